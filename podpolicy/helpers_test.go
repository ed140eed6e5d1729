package podpolicy

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

// fakeKernel records what each endpoint holds, as the enforcer would.
type fakeKernel struct {
	mu    sync.Mutex
	eps   map[Endpoint]kernelState
	calls int
}

type kernelState struct {
	digest   string // of the ruleset set; "closed" for FailClosed
	rs       *policy.Ruleset
	table    []byte // SetEndpointTable's
	attached bool
}

func newFakeKernel() *fakeKernel { return &fakeKernel{eps: make(map[Endpoint]kernelState)} }

func (k *fakeKernel) SetEndpoint(ep Endpoint, rs *policy.Ruleset) error {
	e, err := encodeRuleset(rs)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	s := k.eps[ep]
	s.digest, s.rs = e.digest, rs
	k.eps[ep] = s
	return nil
}

func (k *fakeKernel) SetEndpointTable(ep Endpoint, digest string, table []byte) error {
	if len(table) == 0 {
		return errors.New("empty table")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	s := k.eps[ep]
	s.digest, s.rs, s.table = digest, nil, table
	k.eps[ep] = s
	return nil
}

func (k *fakeKernel) FailClosed(ep Endpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	s := k.eps[ep]
	s.digest, s.rs = "closed", nil
	k.eps[ep] = s
	return nil
}

func (k *fakeKernel) AttachEndpoint(ep Endpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.eps[ep]
	s.attached = true
	k.eps[ep] = s
	return nil
}

func (k *fakeKernel) RemoveEndpoint(ep Endpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.eps, ep)
	return nil
}

func (k *fakeKernel) get(ep Endpoint) (kernelState, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.eps[ep]
	return s, ok
}

func (k *fakeKernel) callCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

// testStore is a store with one ready ENI and free addresses 10.0.0.10-29.
func testStore(tb testing.TB) store.File {
	tb.Helper()
	db := store.File{Path: filepath.Join(tb.TempDir(), "veni.db")}
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		e := store.ENI{ID: "eni-a", MAC: "02:00:00:00:00:01", InstanceID: "i-test", VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.253"),
			PrimaryIP: netip.MustParseAddr("10.0.0.2"), Owned: true, State: store.ENIReady, CreatedAt: time.Now()}
		if err := tx.PutENI(e); err != nil {
			return err
		}
		if err := tx.PutNode(store.NodeInfo{InstanceID: "i-test", PrimaryIP: netip.MustParseAddr("10.0.0.1")}); err != nil {
			return err
		}
		for i := 10; i < 30; i++ {
			ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			if err := tx.PutIP(store.IP{Addr: ip, ENIID: "eni-a", State: store.IPFree, AddedAt: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	tb.Cleanup(func() {
		_ = db.View(func(tx *store.ReadTx) error {
			for _, v := range tx.Check() {
				tb.Errorf("store invariant: %s", v)
			}
			return nil
		})
	})
	return db
}

func mustUpdate(tb testing.TB, db store.File, fn func(tx *store.WriteTx) error) {
	tb.Helper()
	if err := db.Update(fn); err != nil {
		tb.Fatal(err)
	}
}

// reserve gives pod ns/name address ip, as an ADD's first transaction.
func reserve(tb testing.TB, db store.File, ns, name, ip string) store.OwnerKey {
	tb.Helper()
	addr := netip.MustParseAddr(ip)
	key := store.NewOwnerKey("c-"+name, "eth0")
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		rec, err := tx.IP(addr)
		if err != nil {
			return err
		}
		rec.State, rec.Owner = store.IPReserved, key
		if err := tx.PutIP(rec); err != nil {
			return err
		}
		return tx.PutAllocation(store.Allocation{Key: key, ContainerID: "c-" + name, IfName: "eth0", PodNamespace: ns, PodName: name,
			IP: addr, ENIID: "eni-a", State: store.IPReserved, ReservedAt: time.Now()})
	})
	return key
}

// bind marks the allocation bound on host veth ifindex, as an ADD's last
// transaction, and returns the pod's endpoint.
func bind(tb testing.TB, db store.File, key store.OwnerKey, ifindex int) Endpoint {
	tb.Helper()
	var ep Endpoint
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		a, err := tx.Allocation(key)
		if err != nil {
			return err
		}
		rec, err := tx.IP(a.IP)
		if err != nil {
			return err
		}
		rec.State = store.IPBound
		if err := tx.PutIP(rec); err != nil {
			return err
		}
		if a.IP6.IsValid() {
			rec6, err := tx.IP(a.IP6)
			if err != nil {
				return err
			}
			rec6.State = store.IPBound
			if err := tx.PutIP(rec6); err != nil {
				return err
			}
		}
		a.State, a.HostIfindex, a.HostVeth, a.BoundAt = store.IPBound, ifindex, "veni-x", time.Now()
		ep = Endpoint{Ifindex: ifindex, IP: a.IP, IP6: a.IP6}
		return tx.PutAllocation(a)
	})
	return ep
}

// reserve6 adds IPv6 ip to the reservation key: a dual-stack pod's.
func reserve6(tb testing.TB, db store.File, key store.OwnerKey, ip string) {
	tb.Helper()
	addr := netip.MustParseAddr(ip)
	mustUpdate(tb, db, func(tx *store.WriteTx) error {
		a, err := tx.Allocation(key)
		if err != nil {
			return err
		}
		if err := tx.PutIP(store.IP{Addr: addr, ENIID: a.ENIID, State: store.IPReserved, Owner: key, AddedAt: time.Now()}); err != nil {
			return err
		}
		a.IP6 = addr
		return tx.PutAllocation(a)
	})
}

func writeFile(tb testing.TB, dir, name, body string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func mustPass(tb testing.TB, s *Syncer) PassReport {
	tb.Helper()
	rep, err := s.Pass(context.Background())
	if err != nil {
		tb.Fatalf("pass: %v", err)
	}
	return rep
}

func record(tb testing.TB, db store.File, ns, name string) (store.PolicyRecord, bool) {
	tb.Helper()
	var r store.PolicyRecord
	var ok bool
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		r, err = tx.PolicyRecord(ns, name)
		ok = err == nil
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r, ok
}

func planFor(tb testing.TB, db store.File, ns, name string) Plan {
	tb.Helper()
	var p Plan
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		p, err = PlanForAdd(tx, true, ns, name)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

const podsYAML = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers:
  - name: c
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: far, namespace: shop, labels: {app: client}, annotations: {k8s.aliyun.com/pod-ips: "10.9.0.7"}}
spec: {nodeName: node-b, containers: [{name: c}]}
`

const allowHTTP = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
`

const denyAll = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
`
