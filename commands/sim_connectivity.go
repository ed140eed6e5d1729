package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/eni/sim/pods"
)

func newSimEnvCommand(g *simGlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "env NODE",
		Short: "Print the exports a libcni client needs to add pods on NODE",
		Long: `Prints CNI_PATH, NETCONFPATH and VENI_CONFIG for the node, so that

  eval "$(veni sim env node-1)"
  veni sim exec node-1 -- cnitool add veni /run/netns/mypod

adds a pod on node-1 with any libcni client (cnitool, containerd).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := runningSim(g.dir)
			if err != nil {
				return err
			}
			node, err := findSimNode(st, args[0])
			if err != nil {
				return err
			}
			p := simNodeFiles(st.Dir, node.Name)
			fmt.Fprintf(cmd.OutOrStdout(), "export CNI_PATH=%s\nexport NETCONFPATH=%s\nexport VENI_CONFIG=%s\n",
				shellQuote(st.Dir+"/"+simCNIBinDir), shellQuote(p.ConfDir), shellQuote(p.Config))
			return nil
		},
	}
}

func shellQuote(s string) string {
	for _, c := range s {
		if !(c == '/' || c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "'" + s + "'"
		}
	}
	return s
}

func newSimConnectivityCommand(g *simGlobalOptions) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "connectivity",
		Short: "Open a TCP connection between every pair of the sim's pods and print the matrix; exit 1 if one fails",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := runningSim(g.dir)
			if err != nil {
				return err
			}
			all, err := listSimPods(st)
			if err != nil {
				return err
			}
			m, err := probeMatrix(cmd.Context(), all, timeout)
			if err != nil {
				return err
			}
			return m.print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "per connection")
	return cmd
}

// connMatrix is the result of a TCP exchange from every pod to every other.
type connMatrix struct {
	pods []simPod
	errs [][]error // errs[i][j]: from pods[i] to pods[j]; nil is success
}

// probeMatrix starts an echo server in every pod and dials every other pod
// from each one, a few connections at a time.
func probeMatrix(ctx context.Context, all []simPod, timeout time.Duration) (*connMatrix, error) {
	if ctx == nil {
		ctx = context.Background()
	}
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
	m := &connMatrix{pods: all, errs: make([][]error, len(all))}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range all {
		m.errs[i] = make([]error, len(all))
		for j := range all {
			if i == j {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				m.errs[i][j] = pods.Dial(ctx, all[i].Pod.NetNS, all[j].IP, timeout)
			}()
		}
	}
	wg.Wait()
	return m, nil
}

// failures lists every failed pair.
func (m *connMatrix) failures() []error {
	var out []error
	for i, row := range m.errs {
		for j, err := range row {
			if err != nil {
				out = append(out, fmt.Errorf("%s (%s) -> %s (%s): %w", m.pods[i].Pod.Name, m.pods[i].Node, m.pods[j].Pod.Name, m.pods[j].Node, err))
			}
		}
	}
	return out
}

func (m *connMatrix) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 2, 1, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO")
	for _, p := range m.pods {
		fmt.Fprintf(tw, "\t%s", p.Pod.Name)
	}
	fmt.Fprintln(tw)
	for i, row := range m.errs {
		fmt.Fprintf(tw, "%s@%s", m.pods[i].Pod.Name, m.pods[i].Node)
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
	fails := m.failures()
	n := len(m.pods) * (len(m.pods) - 1)
	fmt.Fprintf(w, "%d of %d pod pairs connected over TCP\n", n-len(fails), n)
	for _, err := range fails {
		fmt.Fprintln(w, "  ", err)
	}
	if len(fails) > 0 {
		return errors.New("some pod pairs cannot connect")
	}
	return nil
}
