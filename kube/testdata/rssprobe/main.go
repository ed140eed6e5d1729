// Command rssprobe syncs a NetworkPolicy and a Pod informer against the
// API server named by $PROBE_HOST ($PROBE_TOKEN, $PROBE_CA_FILE), then
// prints its own RSS and heap: the memory a process linking only kube
// needs for those caches. TestInformer_Memory_RealServer runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/veni-cni/veni/kube"
)

func main() {
	c, err := kube.New(&kube.Config{Host: os.Getenv("PROBE_HOST"), BearerToken: os.Getenv("PROBE_TOKEN"), CAFile: os.Getenv("PROBE_CA_FILE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	np := kube.NewInformer(c, kube.NetworkPolicies, kube.InformerOptions[kube.NetworkPolicy]{
		Transform: func(p *kube.NetworkPolicy) { p.Annotations = nil },
	})
	pods := kube.NewInformer(c, kube.Pods, kube.InformerOptions[kube.Pod]{FieldSelector: os.Getenv("PROBE_POD_SELECTOR")})
	go np.Run(ctx)
	go pods.Run(ctx)
	if np.WaitForSync(ctx) != nil || pods.WaitForSync(ctx) != nil {
		fmt.Fprintln(os.Stderr, "no sync")
		os.Exit(1)
	}
	runtime.GC()
	peak := status("VmHWM:")
	rss := status("VmRSS:")
	debug.FreeOSMemory() // what the scavenger returns over time anyway
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("policies=%d pods=%d peak_rss=%s rss_after_gc=%s rss_after_scavenge=%s heap_inuse_mb=%.2f\n", len(np.List()), len(pods.List()),
		peak, rss, status("VmRSS:"), float64(ms.HeapInuse)/(1<<20))
}

// status returns a field of /proc/self/status, e.g. "VmRSS:".
func status(field string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			return strings.Join(strings.Fields(strings.TrimPrefix(l, field)), "")
		}
	}
	return "?"
}
