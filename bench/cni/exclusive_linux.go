package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/store"
)

// exclusiveType is the instance type of the exclusive ENI benchmark's node:
// 8 ENIs, so 7 pods of their own at once.
const (
	exclusiveType = "ecs.g7.4xlarge"
	exclusivePods = 7
)

// exclusiveResult is one kind of exclusive ADD (warm or cold).
type exclusiveResult struct {
	kind     string
	add, del []time.Duration
	calls    map[string]int // OpenAPI calls during the ADDs, by action
}

// runExclusive measures exclusive ENI mode on a one-node sim in that mode,
// at parallelism 1: ADD and DEL latency of a pod whose ENI is warm (the ENI
// pool holds it: min_pool_size 7) and cold (created, attached and waited
// for in the ADD: an empty pool, and the daemon deletes every ENI a DEL
// gives back), and the OpenAPI calls the ADDs cost, by action. Each round
// adds 7 pods (the node's capacity), then deletes them.
func runExclusive(ctx context.Context, o options, out, progress io.Writer) error {
	var results []exclusiveResult
	for _, kind := range []string{"cold", "warm"} {
		fmt.Fprintf(progress, "exclusive ENI mode, %s: %d rounds of %d pods\n", kind, o.exclusiveRounds, exclusivePods)
		r, err := exclusiveKind(ctx, o, kind)
		if err != nil {
			return fmt.Errorf("exclusive %s: %w", kind, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(out, "\nexclusive ENI mode (one ENI per pod): one sim node %s (%d pods), attach delay 500ms (the sim's default), parallelism 1\n", exclusiveType, exclusivePods)
	fmt.Fprintln(out, "cold: the pool is empty and the ADD creates, attaches and waits for the pod's ENI; warm: the ADD takes an ENI of the pool (min_pool_size 7)")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ENI\tPODS\tADD p50 ms\tADD p99 ms\tDEL p50 ms\tDEL p99 ms\tcloud calls per ADD\t(by action)\t")
	for _, r := range results {
		total := 0
		var by []string
		for _, a := range slices.Sorted(maps.Keys(r.calls)) {
			total += r.calls[a]
			by = append(by, fmt.Sprintf("%s %.2f", a, float64(r.calls[a])/float64(len(r.add))))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%s\t\n", r.kind, len(r.add), ms(percentile(r.add, 50)), ms(percentile(r.add, 99)),
			ms(percentile(r.del, 50)), ms(percentile(r.del, 99)), float64(total)/float64(len(r.add)), strings.Join(by, ", "))
	}
	return tw.Flush()
}

// exclusiveKind runs the rounds of one kind on a sim of its own.
func exclusiveKind(ctx context.Context, o options, kind string) (_ exclusiveResult, err error) {
	res := exclusiveResult{kind: kind, calls: map[string]int{}}
	pool := "0"
	if kind == "warm" {
		pool = strconv.Itoa(exclusivePods)
	}
	v := veniSim{system: "veni/exclusive-" + kind, simName: o.name + "-x" + kind[:1], dir: filepath.Join(o.workDir, "sim-exclusive-"+kind)}
	s, storePath, err := startVeniWith(ctx, o, v, "--instance-type", exclusiveType, "--min-pool-size", pool, "--max-pool-size", pool,
		"--node-config", "exclusive_eni_type=eniOnly", "--node-config", "idle_ip_reclaim_after=0s")
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	if kind == "warm" {
		if err := waitExclusive(ctx, storePath, o.poolWait, func(warm, all int) bool { return warm >= exclusivePods }); err != nil {
			return res, err
		}
	}
	if s.ctl, err = simcluster.Connect(v.dir); err != nil {
		return res, err
	}
	for range o.exclusiveRounds {
		b, err := s.runExclusiveRound(ctx, exclusivePods)
		if err != nil {
			return res, err
		}
		res.add, res.del = append(res.add, b.add...), append(res.del, b.del...)
		for a, n := range b.calls {
			res.calls[a] += n
		}
		if kind == "cold" {
			// The daemon deletes what the DELs gave back (max_pool_size
			// 0): the next round is cold again.
			if err := waitExclusive(ctx, storePath, o.poolWait, func(warm, all int) bool { return all == 0 }); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// exclusiveRound is one round's samples and the ADDs' cloud calls.
type exclusiveRound struct {
	add, del []time.Duration
	calls    map[string]int
}

// runExclusiveRound adds n pods one after another, counting the cloud
// calls made meanwhile, then deletes them.
func (s *system) runExclusiveRound(ctx context.Context, n int) (r exclusiveRound, err error) {
	ctl := s.ctl
	before, err := ctl.Live(ctx, false)
	if err != nil {
		return r, err
	}
	b, err := s.runBatchParts(ctx, 1, n, func() error {
		after, err := ctl.Live(ctx, false)
		if err != nil {
			return err
		}
		r.calls = map[string]int{}
		for a, st := range after.Cloud.Calls {
			if d := st.Calls - before.Cloud.Calls[a].Calls; d > 0 {
				r.calls[a] = d
			}
		}
		return nil
	})
	r.add, r.del = b.add, b.del
	return r, err
}

// waitExclusive waits until done says yes to the node's warm and total
// exclusive ENIs.
func waitExclusive(ctx context.Context, storePath string, timeout time.Duration, done func(warm, all int) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		warm, all := 0, 0
		err := store.View(storePath, func(tx *store.ReadTx) error {
			enis, err := tx.ENIs()
			for _, e := range enis {
				if e.Kind != store.ENIExclusive {
					continue
				}
				all++
				if e.Pod == "" && e.State == store.ENIReady {
					warm++
				}
			}
			return err
		})
		if err == nil && done(warm, all) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("exclusive ENIs: %d warm of %d after %s: %v (see the daemon log in the sim dir)", warm, all, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
