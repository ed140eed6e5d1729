package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/veni-cni/veni/eni/sim/pods"
)

// run sets up every system, measures them side by side, prints the report
// and removes everything it created, whatever happened.
func run(ctx context.Context, o options, out, progress io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it creates network namespaces)")
	}
	if o.workDir == "" {
		if o.workDir, err = os.MkdirTemp("", "veni-bench-cni-"); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(o.workDir)) }()
	}
	var systems []*system
	defer func() {
		for _, s := range systems {
			err = errors.Join(err, s.close())
		}
	}()
	for _, vs := range veniSims(o) {
		fmt.Fprintf(progress, "setting up %s (sim %s, pool >= %d)\n", vs.system, vs.simName, o.batch)
		v, err := startVeni(ctx, o, vs)
		if err != nil {
			return fmt.Errorf("%s: %w", vs.system, err)
		}
		systems = append(systems, v)
	}
	fmt.Fprintf(progress, "setting up the reference plugins from %s\n", o.cniPath)
	for _, p := range refPlugins {
		s, err := startRef(o, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		systems = append(systems, s)
	}

	var phases []phaseResult
	for _, ph := range []struct{ par, n int }{{1, o.n1}, {8, o.n8}} {
		fmt.Fprintf(progress, "parallelism %d: %d pods per system in batches of %d\n", ph.par, ph.n, o.batch)
		r, err := runPhase(ctx, systems, ph.par, ph.n, o)
		if err != nil {
			return err
		}
		phases = append(phases, r)
	}
	writeLatencyReport(out, o, phases)
	if o.exclusiveRounds > 0 {
		if err := runExclusive(ctx, o, out, progress); err != nil {
			return err
		}
	}

	if !o.skipStart {
		fmt.Fprintf(progress, "process start: %d runs per binary\n", o.execRuns)
		starts, err := measureStarts(ctx, o)
		if err != nil {
			return err
		}
		writeStartReport(out, o, starts)
	}
	return nil
}

// phaseResult is one parallelism's samples for every system.
type phaseResult struct {
	par     int
	systems []string // in setup order; the table keeps it
	res     map[string]*samples
}

// samples are the timed regions of one system at one parallelism.
type samples struct {
	add, del         []time.Duration
	addWall, delWall time.Duration // sum over batches of the ADD (DEL) phase's wall time
	addCPU, delCPU   time.Duration // user+sys CPU of the plugin processes (and their children) in those phases
}

// runPhase measures n pods per system at parallelism par. Systems take
// turns batch by batch, each round starting with the next system, so that
// drift on a shared machine spreads over all of them.
func runPhase(ctx context.Context, systems []*system, par, n int, o options) (phaseResult, error) {
	r := phaseResult{par: par, res: map[string]*samples{}}
	for _, s := range systems {
		r.systems = append(r.systems, s.name)
		r.res[s.name] = &samples{}
		for range o.warmup {
			if _, err := s.runBatch(ctx, par, o.batch); err != nil {
				return r, fmt.Errorf("%s warm-up: %w", s.name, err)
			}
		}
	}
	for round, done := 0, 0; done < n; round++ {
		size := min(o.batch, n-done)
		for k := range systems {
			s := systems[(round+k)%len(systems)]
			b, err := s.runBatch(ctx, par, size)
			if err != nil {
				return r, fmt.Errorf("%s at parallelism %d: %w", s.name, par, err)
			}
			acc := r.res[s.name]
			acc.add = append(acc.add, b.add...)
			acc.del = append(acc.del, b.del...)
			acc.addWall += b.addWall
			acc.delWall += b.delWall
			acc.addCPU += b.addCPU
			acc.delCPU += b.delCPU
		}
		done += size
	}
	return r, nil
}

// runBatch creates size pod namespaces, adds them all with par workers,
// deletes them all the same way, and removes the namespaces. Only the
// libcni calls are timed.
func (s *system) runBatch(ctx context.Context, par, size int) (samples, error) {
	return s.runBatchParts(ctx, par, size, nil)
}

// runBatchParts is runBatch; afterAdd, when set, runs between the ADDs and
// the DELs, untimed.
func (s *system) runBatchParts(ctx context.Context, par, size int, afterAdd func() error) (b samples, err error) {
	batch := make([]pods.Pod, 0, size)
	defer func() {
		for _, p := range batch {
			err = errors.Join(err, pods.DeleteNetNS(filepath.Base(p.NetNS)))
		}
	}()
	for range size {
		seq := s.nextSeq
		s.nextSeq++
		path, err := pods.CreateNetNS(s.podNS(seq))
		if err != nil {
			return b, err
		}
		batch = append(batch, pods.Pod{
			Namespace:   "bench",
			Name:        fmt.Sprintf("pod-%d", seq),
			UID:         fmt.Sprintf("00000000-0000-0000-0000-%012d", seq),
			ContainerID: fmt.Sprintf("bench%027d", seq),
			NetNS:       path,
		})
	}
	cpu0 := childrenCPU()
	b.add, b.addWall, err = parallel(ctx, par, size, func(i int) (time.Duration, error) {
		_, took, err := s.rt.Add(ctx, batch[i])
		return took, err
	})
	b.addCPU = childrenCPU() - cpu0
	if err != nil {
		// Release what did get added; DEL is idempotent for the rest.
		_, _, derr := parallel(context.Background(), par, size, func(i int) (time.Duration, error) { return s.rt.Del(context.Background(), batch[i]) })
		return b, errors.Join(err, derr)
	}
	if afterAdd != nil {
		if err := afterAdd(); err != nil {
			_, _, derr := parallel(context.Background(), par, size, func(i int) (time.Duration, error) { return s.rt.Del(context.Background(), batch[i]) })
			return b, errors.Join(err, derr)
		}
	}
	cpu0 = childrenCPU()
	b.del, b.delWall, err = parallel(ctx, par, size, func(i int) (time.Duration, error) { return s.rt.Del(ctx, batch[i]) })
	b.delCPU = childrenCPU() - cpu0
	return b, err
}

// childrenCPU is the user+sys CPU time of every child process this program
// has waited for, their own waited-for children included: libcni waits for
// each plugin, and ptp waits for the host-local it runs. Only one system
// runs at a time, so the difference over a phase is that system's cost. A
// veni daemon is not a child and is not counted.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallel runs fn for 0..n-1 on par workers and returns each call's own
// duration and the wall time of the whole set.
func parallel(ctx context.Context, par, n int, fn func(i int) (time.Duration, error)) ([]time.Duration, time.Duration, error) {
	took := make([]time.Duration, n)
	errs := make([]error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(par, n) {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					continue
				}
				took[i], errs[i] = fn(i)
			}
		})
	}
	wg.Wait()
	return took, time.Since(start), errors.Join(errs...)
}
