package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// options are the benchmark's flags.
type options struct {
	veniBin   string        // the veni binary (its "sim up" builds veni's node)
	cniPath   string        // where the reference plugins live
	name      string        // prefix of every namespace this run creates
	workDir   string        // sim directory and reference configs
	n1, n8    int           // measured ADD/DEL pairs per system at parallelism 1 and 8
	batch     int           // pods per batch: created, added, deleted, removed
	warmup    int           // discarded batches per system and parallelism
	execRuns  int           // runs per binary for the process start cost
	poolWait  time.Duration // how long to wait for veni's pool to warm up
	skipStart bool          // skip the process start section
	datapath  string        // veni's datapath config; "" keeps veni's default
	// extraDatapaths are more veni rows, one sim each, with these datapaths
	// (comma-separated), to show what a datapath costs an ADD.
	extraDatapaths string
	// policy adds row veni/policy: veni's datapath with every pod selected
	// by 100 policies of 1,000 rules.
	policy bool
	// dual adds row veni/dual: the plain datapath with ip_stack dual (an
	// IPv4 and an IPv6 per pod), to compare with veni/plain.
	dual bool
	// ipv6 adds row veni/ipv6: the plain datapath with ip_stack ipv6 (one
	// IPv6 and no IPv4 per pod), to compare with veni/plain.
	ipv6 bool
	// exclusiveRounds of exclusive ENI mode (7 pods each, cold and warm
	// ENIs); 0 skips that section.
	exclusiveRounds int
}

// podsPerSystem is how many pods a run adds to each system (warm-up
// batches and measured pods of both parallelisms).
func (o *options) podsPerSystem() int { return 2*o.warmup*o.batch + o.n1 + o.n8 }

func (o *options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.veniBin, "veni", "bin/veni", "the veni binary")
	fs.StringVar(&o.cniPath, "cni-path", "/usr/lib/cni", "directory of the reference plugins (ptp, bridge, host-local)")
	fs.StringVar(&o.name, "name", fmt.Sprintf("vbn%d", os.Getpid()), "prefix of the sim and namespaces this run creates")
	fs.StringVar(&o.workDir, "dir", "", "work directory (default: a new directory under /tmp)")
	fs.IntVar(&o.n1, "n1", 200, "measured pods per system at parallelism 1")
	fs.IntVar(&o.n8, "n8", 400, "measured pods per system at parallelism 8")
	fs.IntVar(&o.batch, "batch", 16, "pods per batch (veni's pool is warmed to at least this)")
	fs.IntVar(&o.warmup, "warmup", 1, "discarded batches per system before measuring each parallelism")
	fs.IntVar(&o.execRuns, "exec-runs", 20, "runs per binary when measuring process start")
	fs.DurationVar(&o.poolWait, "pool-wait", 90*time.Second, "how long to wait for veni's pool to fill")
	fs.StringVar(&o.datapath, "veni-datapath", "", "datapath of veni's node (auto, ebpf, plain; default: veni's default)")
	fs.StringVar(&o.extraDatapaths, "extra-datapaths", "plain", "comma-separated datapaths measured as extra veni rows (veni/<datapath>), \"\" for none")
	fs.BoolVar(&o.skipStart, "skip-start", false, "skip the process start (inittrace) section")
	fs.BoolVar(&o.dual, "dual", true, "add row veni/dual: the plain datapath with ip_stack dual (one IPv4 and one IPv6 per pod); compare with veni/plain")
	fs.BoolVar(&o.ipv6, "ipv6", true, "add row veni/ipv6: the plain datapath with ip_stack ipv6 (one IPv6 and no IPv4 per pod); compare with veni/plain")
	fs.IntVar(&o.exclusiveRounds, "exclusive-rounds", 3, "rounds of 7 pods measured in exclusive ENI mode, cold and warm ENIs (0: skip)")
	fs.BoolVar(&o.policy, "policy", true, "add row veni/policy: every pod selected by 100 NetworkPolicies of 1,000 rules, compiled before its ADD")
}

func (o *options) validate() error {
	if o.n1 < 1 || o.n8 < 1 || o.batch < 8 || o.warmup < 0 || o.execRuns < 1 {
		return fmt.Errorf("need -n1, -n8, -exec-runs >= 1, -batch >= 8 (one batch must keep 8 workers busy), -warmup >= 0")
	}
	abs, err := filepath.Abs(o.veniBin)
	if err != nil {
		return fmt.Errorf("veni binary: %w", err)
	}
	o.veniBin = abs
	if _, err := os.Stat(o.veniBin); err != nil {
		return fmt.Errorf("veni binary: %w (run make build)", err)
	}
	for _, p := range []string{"ptp", "bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(o.cniPath, p)); err != nil {
			return fmt.Errorf("reference plugin: %w (apt-get install containernetworking-plugins)", err)
		}
	}
	return nil
}

func main() {
	var o options
	o.addFlags(flag.CommandLine)
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "bench-cni: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench-cni: %v\n", err)
		stop()
		os.Exit(1)
	}
}
