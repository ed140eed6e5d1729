package podpolicy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/store"
)

// BenchmarkKernelMemory installs the bench world's 100 local endpoints
// (1,000 rules, every pod selected) as an ADD does, from their records'
// kernel tables, and reports the kernel memory the enforcer's maps gained
// per endpoint, as the kernel accounts it, with the rule trie's share.
// The time per op is one ADD's install.
func BenchmarkKernelMemory(b *testing.B) {
	testutil.RequireRoot(b)
	db, dir := testStore(b), b.TempDir()
	writeFile(b, dir, "world.yaml", benchManifests())
	s := NewSyncer(SyncOptions{DB: db, Enabled: true, ManifestDir: dir, Node: "local", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
	if rep, err := s.Pass(context.Background()); err != nil || rep.Local != 100 {
		b.Fatalf("pass %+v, %v", rep, err)
	}
	type endpoint struct {
		ep    Endpoint
		table []byte
	}
	var eps []endpoint
	if err := db.View(func(tx *store.ReadTx) error {
		for n := range 10 {
			for i := range 10 {
				ns, name := fmt.Sprintf("ns%d", n), fmt.Sprintf("p%d", i)
				_, table, err := tx.PolicyTable(ns, name)
				if err != nil {
					return fmt.Errorf("%s/%s: %w", ns, name, err)
				}
				eps = append(eps, endpoint{Endpoint{Ifindex: 1<<20 + len(eps), IP: netip.AddrFrom4([4]byte{10, byte(n), 0, byte(i + 1)})}, table})
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}

	pinDir, err := datapath.PinDir(fmt.Sprintf("i-membench-%d", os.Getpid()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := enforce.Teardown(pinDir); err != nil {
			b.Errorf("teardown: %v", err)
		}
		if err := fastpath.Teardown(pinDir); err != nil {
			b.Errorf("fast path teardown: %v", err)
		}
	})
	e, err := enforce.Open(enforce.Options{PinDir: pinDir, PodHook: config.DefaultConfig().EBPFPodHook})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	k := enforcerKernel{e}
	memory := func() (total, rules uint64) {
		m, err := e.Memory()
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range m {
			total += v
		}
		return total, m["veni_pol_rules"]
	}

	var entries int
	for b.Loop() {
		b.StopTimer()
		for _, x := range eps {
			if err := k.RemoveEndpoint(x.ep); err != nil {
				b.Fatal(err)
			}
		}
		before, rulesBefore := memory()
		b.StartTimer()
		for _, x := range eps {
			if err := k.SetEndpointTable(x.ep, "", x.table); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		after, rulesAfter := memory()
		n := float64(len(eps))
		b.ReportMetric(float64(after-before)/n, "kernel-B/endpoint")
		b.ReportMetric(float64(rulesAfter-rulesBefore)/n, "trie-B/endpoint")
		all, err := e.Endpoints()
		if err != nil {
			b.Fatal(err)
		}
		entries = 0
		for _, ep := range all {
			entries += ep.Entries
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(entries)/float64(len(eps)), "trie-entries/endpoint")
	// The time per op covers len(eps) installs; report one.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(eps)), "ns/install")
}
