package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// initEntry is one line of GODEBUG=inittrace=1: the runtime prints one per
// package whose init did any work.
type initEntry struct {
	pkg    string
	at     float64 // ms since process start when the init began
	clock  float64 // ms the init took
	bytes  int64
	allocs int64
}

// parseInitTrace reads the init lines of a Go program's stderr and ignores
// everything else the program printed.
func parseInitTrace(r io.Reader) ([]initEntry, error) {
	var out []initEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "init ") {
			continue
		}
		var e initEntry
		if _, err := fmt.Sscanf(line, "init %s @%f ms, %f ms clock, %d bytes, %d allocs", &e.pkg, &e.at, &e.clock, &e.bytes, &e.allocs); err != nil {
			return nil, fmt.Errorf("inittrace line %q: %w", line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// startResult is the start cost of one plugin binary.
type startResult struct {
	name      string
	size      int64
	wall      time.Duration // median exec of CNI_COMMAND=VERSION, without tracing
	initMS    float64       // median over runs of the summed init clock
	initBytes int64         // median over runs of the summed init bytes
	packages  int           // packages with init work
	lastInit  float64       // ms from process start to the last init (median)
	heaviest  []initEntry   // by mean clock over runs, heaviest first
}

// measureStarts runs every plugin binary with CNI_COMMAND=VERSION, as the
// runtime would, alternately with and without GODEBUG=inittrace=1.
func measureStarts(ctx context.Context, o options) ([]startResult, error) {
	bins := []struct{ name, path string }{
		{"veni", o.veniBin},
		{"ptp", filepath.Join(o.cniPath, "ptp")},
		{"host-local", filepath.Join(o.cniPath, "host-local")},
	}
	var out []startResult
	for _, b := range bins {
		r, err := measureStart(ctx, b.name, b.path, o.execRuns)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func measureStart(ctx context.Context, name, path string, runs int) (startResult, error) {
	r := startResult{name: name}
	if fi, err := os.Stat(path); err == nil {
		r.size = fi.Size()
	}
	var (
		walls      []time.Duration
		sumsMS     []float64
		sumsBytes  []int64
		lasts      []float64
		perPackage = map[string]*initEntry{}
	)
	for range runs {
		wall, _, err := execVersion(ctx, path, false)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		walls = append(walls, wall)
		_, stderr, err := execVersion(ctx, path, true)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		entries, err := parseInitTrace(bytes.NewReader(stderr))
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		var ms float64
		var by int64
		var last float64
		for _, e := range entries {
			ms += e.clock
			by += e.bytes
			last = max(last, e.at+e.clock)
			acc, ok := perPackage[e.pkg]
			if !ok {
				acc = &initEntry{pkg: e.pkg}
				perPackage[e.pkg] = acc
			}
			acc.clock += e.clock
			acc.bytes += e.bytes
			acc.allocs += e.allocs
		}
		sumsMS, sumsBytes, lasts = append(sumsMS, ms), append(sumsBytes, by), append(lasts, last)
		r.packages = len(entries)
	}
	r.wall = median(walls)
	r.initMS = median(sumsMS)
	r.initBytes = median(sumsBytes)
	r.lastInit = median(lasts)
	// Means over all runs: a package with no init work in a run counts as 0.
	for _, e := range perPackage {
		e.clock /= float64(runs)
		e.bytes /= int64(runs)
		e.allocs /= int64(runs)
		r.heaviest = append(r.heaviest, *e)
	}
	slices.SortFunc(r.heaviest, func(a, b initEntry) int {
		return cmp.Or(cmp.Compare(b.clock, a.clock), cmp.Compare(a.pkg, b.pkg))
	})
	return r, nil
}

// execVersion runs the plugin's VERSION command and returns its wall time
// and stderr.
func execVersion(ctx context.Context, path string, trace bool) (time.Duration, []byte, error) {
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(os.Environ(), "CNI_COMMAND=VERSION")
	if trace {
		cmd.Env = append(cmd.Env, "GODEBUG=inittrace=1")
	}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return wall, nil, fmt.Errorf("CNI_COMMAND=VERSION: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if !bytes.Contains(stdout.Bytes(), []byte("supportedVersions")) {
		return wall, nil, fmt.Errorf("CNI_COMMAND=VERSION printed %q, not a version result", stdout.Bytes())
	}
	return wall, stderr.Bytes(), nil
}

func median[T cmp.Ordered](xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// heaviestShown is how many of veni's init packages the report lists.
const heaviestShown = 12

func writeStartReport(w io.Writer, o options, rs []startResult) {
	fmt.Fprintf(w, "\nCNI process start: CNI_COMMAND=VERSION, medians of %d runs (init columns from GODEBUG=inittrace=1)\n", o.execRuns)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BINARY\tSIZE MB\tEXEC ms\tINIT ms\tINIT bytes\tINIT PKGS\tLAST INIT ENDS @ms\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%.2f\t%d\t%d\t%.2f\t\n", r.name, float64(r.size)/(1<<20), float64(r.wall)/float64(time.Millisecond), r.initMS, r.initBytes, r.packages, r.lastInit)
	}
	_ = tw.Flush()
	for _, r := range rs {
		if r.name != "veni" {
			continue
		}
		fmt.Fprintf(w, "\nveni's heaviest package inits (mean of %d runs):\n", o.execRuns)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PACKAGE\tms\tbytes\tallocs")
		for _, e := range r.heaviest[:min(heaviestShown, len(r.heaviest))] {
			fmt.Fprintf(tw, "  %s\t%.3f\t%d\t%d\n", e.pkg, e.clock, e.bytes, e.allocs)
		}
		_ = tw.Flush()
	}
}
