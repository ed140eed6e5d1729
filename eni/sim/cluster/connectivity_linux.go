package cluster

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/veni-cni/veni/eni/sim/pods"
)

// probeConcurrency bounds the connections a Probe has open at once.
const probeConcurrency = 16

// Matrix is the result of a TCP exchange from every pod to every other.
type Matrix struct {
	Pods []PodRecord
	Errs [][]error // Errs[i][j]: from Pods[i] to Pods[j]; nil is success
}

// Probe starts an echo server in every pod and dials every other pod from
// each one, a few connections at a time, each within timeout.
func Probe(ctx context.Context, all []PodRecord, timeout time.Duration) (*Matrix, error) {
	var servers []*pods.EchoServer
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, p := range all {
		s, err := pods.Serve(p.Pod.NetNS, p.IP)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	m := &Matrix{Pods: all, Errs: make([][]error, len(all))}
	for i := range all {
		m.Errs[i] = make([]error, len(all))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeConcurrency)
	for i := range all {
		for j := range all {
			if i == j {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				m.Errs[i][j] = pods.Dial(ctx, all[i].Pod.NetNS, all[j].IP, timeout)
			}()
		}
	}
	wg.Wait()
	return m, nil
}

// Failures lists every failed pair.
func (m *Matrix) Failures() []error {
	var out []error
	for i, row := range m.Errs {
		for j, err := range row {
			if err != nil {
				out = append(out, fmt.Errorf("%s (%s) -> %s (%s): %w", m.Pods[i].Pod.Name, m.Pods[i].Node, m.Pods[j].Pod.Name, m.Pods[j].Node, err))
			}
		}
	}
	return out
}

// Print writes the matrix and a summary line. May return an error wrapping
// ErrConnectivity when a pair failed.
func (m *Matrix) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 2, 1, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO")
	for _, p := range m.Pods {
		fmt.Fprintf(tw, "\t%s", p.Pod.Name)
	}
	fmt.Fprintln(tw)
	for i, row := range m.Errs {
		fmt.Fprintf(tw, "%s@%s", m.Pods[i].Pod.Name, m.Pods[i].Node)
		for j, err := range row {
			switch {
			case i == j:
				fmt.Fprint(tw, "\t-")
			case err == nil:
				fmt.Fprint(tw, "\tok")
			default:
				fmt.Fprint(tw, "\tFAIL")
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fails := m.Failures()
	n := len(m.Pods) * (len(m.Pods) - 1)
	fmt.Fprintf(w, "%d of %d pod pairs connected over TCP\n", n-len(fails), n)
	for _, err := range fails {
		fmt.Fprintln(w, "  ", err)
	}
	if len(fails) > 0 {
		return fmt.Errorf("%w: %d of %d pairs", ErrConnectivity, len(fails), n)
	}
	return nil
}
