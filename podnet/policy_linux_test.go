package podnet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/policy"
)

// policyKernel holds endpoints like the enforcer; failRemove makes
// RemoveEndpoint fail.
type policyKernel struct {
	mu         sync.Mutex
	eps        map[podpolicy.Endpoint]bool
	failRemove bool
}

func (k *policyKernel) set(ep podpolicy.Endpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.eps[ep] = true
	return nil
}
func (k *policyKernel) SetEndpoint(ep podpolicy.Endpoint, _ *policy.Ruleset) error { return k.set(ep) }
func (k *policyKernel) SetEndpointTable(ep podpolicy.Endpoint, _ string, _ []byte) error {
	return k.set(ep)
}
func (k *policyKernel) FailClosed(ep podpolicy.Endpoint) error     { return k.set(ep) }
func (k *policyKernel) AttachEndpoint(ep podpolicy.Endpoint) error { return k.set(ep) }
func (k *policyKernel) RemoveEndpoint(ep podpolicy.Endpoint) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failRemove {
		return errors.New("bpf map busy")
	}
	delete(k.eps, ep)
	return nil
}
func (k *policyKernel) has(ep podpolicy.Endpoint) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.eps[ep]
}

// Ensure the one release path removes the pod's policy endpoint (its veth
// and address), and that when it cannot, the address stays held so no
// new pod inherits the old pod's policy state.
func TestRelease_RemovesPolicyEndpoint(t *testing.T) {
	testutil.RequireRoot(t)
	db, nodeNS := mustStore(t), mustNetNS(t)
	k := &policyKernel{eps: make(map[podpolicy.Endpoint]bool)}

	p := mustAdd(t, db, nodeNS, "c1")
	ep := podpolicy.Endpoint{Ifindex: p.host.Index, IP: p.res.IP}
	if err := (podpolicy.Plan{From: podpolicy.FromFailClosed}).Install(k, ep); err != nil {
		t.Fatal(err)
	}
	k.failRemove = true
	err := inNS(nodeNS, func() error {
		_, err := Release(context.Background(), Node{Store: db, Policy: k}, p.att, ReleaseOptions{Wait: time.Second})
		return err
	})
	if err == nil {
		t.Fatal("Release succeeded though the policy endpoint could not be removed")
	}
	if _, found := allocation(t, db, p.att.Key()); !found {
		t.Fatal("the address was freed with its policy endpoint still in the kernel")
	}
	k.failRemove = false
	err = inNS(nodeNS, func() error {
		_, err := Release(context.Background(), Node{Store: db, Policy: k}, p.att, ReleaseOptions{Wait: time.Second})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if k.has(ep) {
		t.Error("policy endpoint left after release")
	}
	if _, found := allocation(t, db, p.att.Key()); found {
		t.Error("allocation left")
	}
}
