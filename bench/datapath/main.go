package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:          "bench-datapath",
		Short:        "Measure pod-to-pod datapaths: throughput, latency and connection rate (see hack/bench-datapath.sh)",
		SilenceUsage: true,
	}
	root.AddCommand(newConnrateCommand(), newPingpongCommand(), newFirewallCommand(), newMeasureCommand(), newPolicyCommand(), newTableCommand())
	return root
}

func newConnrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connrate",
		Short: "New TCP connections per second: connect, 64-byte request, 64-byte response, close",
	}
	var listen string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Answer connections until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := listenConnrate(listen)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			return s.Close()
		},
	}
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:7000", "address to listen on, ip:port")
	o := connrateOptions{}
	run := &cobra.Command{
		Use:   "run",
		Short: "Open connections for a while and print the rate as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := runConnrate(cmd.Context(), o)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
		},
	}
	run.Flags().StringVar(&o.To, "to", "127.0.0.1:7000", "server address, ip:port")
	run.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "how long to open connections")
	run.Flags().IntVar(&o.Concurrency, "concurrency", 1, "connections in flight at once")
	run.Flags().DurationVar(&o.Timeout, "timeout", 3*time.Second, "per connection")
	cmd.AddCommand(serve, run)
	return cmd
}

func newPingpongCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pingpong",
		Short: "TCP request/response round trips on one connection (the IPv6 rows' sockperf)",
	}
	var listen string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Echo 64-byte messages until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := listenPingpong(listen)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			return s.Close()
		},
	}
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:7001", "address to listen on, ip:port")
	var (
		to string
		d  time.Duration
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Exchange messages for a while and print the round trips' p50 and p99 (µs) as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lat, err := runPingpong(cmd.Context(), to, d)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(lat)
		},
	}
	run.Flags().StringVar(&to, "to", "127.0.0.1:7001", "server address, ip:port")
	run.Flags().DurationVar(&d, "duration", 5*time.Second, "how long to exchange")
	cmd.AddCommand(serve, run)
	return cmd
}

func newFirewallCommand() *cobra.Command {
	o := firewallOptions{}
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "Print scenario (b)'s host firewall as iptables-restore input",
		Long: `Prints nat and filter tables for iptables-restore: --nat-rules DNAT rules
in PREROUTING (one per Service port, as kube-proxy leaves them) and
--forward-rules DROP rules in FORWARD, none of which match benchmark
traffic, then a conntrack state rule. Load it inside a namespace:

  bench-datapath firewall | ip netns exec NODE iptables-restore`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeFirewall(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().IntVar(&o.NATRules, "nat-rules", 10000, "nat PREROUTING rules")
	cmd.Flags().IntVar(&o.ForwardRules, "forward-rules", 1000, "filter FORWARD rules")
	return cmd
}

// measureFlags binds measureOptions to flags.
type measureFlags struct {
	o        measureOptions
	serverIP string
}

func (f *measureFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.o.Scenario, "scenario", "", "scenario letter: a (clean node) or b (large host firewall)")
	fs.StringVar(&f.o.Row, "row", "", "row key; \"bare\" is the floor the others are a ratio to; the targets read ebpf-same, ebpf-cross, plain-same, plain-cross")
	fs.StringVar(&f.o.Label, "label", "", "row text in the table (default: the key)")
	fs.IntVar(&f.o.Rep, "rep", 0, "repetition number, recorded with the sample")
	fs.StringVar(&f.o.ClientNetNS, "client-netns", "", "path of the client's network namespace")
	fs.StringVar(&f.o.ServerNetNS, "server-netns", "", "path of the server's network namespace")
	fs.StringVar(&f.serverIP, "server-ip", "", "the server's IPv4 address")
	fs.StringSliceVar(&f.o.NodeNetNS, "node-netns", nil, "namespaces whose forwarded packets are counted (the nodes on the path)")
	fs.StringSliceVar(&f.o.FastPathPin, "fastpath-pin", nil, "pin dirs of the nodes' eBPF fast path (/sys/fs/bpf/veni/<instance>), whose counters are recorded")
	fs.DurationVar(&f.o.Duration, "duration", 5*time.Second, "length of each iperf3, sockperf and connrate run")
	fs.StringVar(&f.o.Out, "out", "", "results file to append the sample to (default: print it)")
	fs.IntVar(&f.o.RRCPU, "rr-cpu", -1, "bind sockperf and connrate (both ends) to this CPU; -1: leave them to the scheduler")
	fs.IntVar(&f.o.Ports.Iperf3, "iperf3-port", 5201, "iperf3 server port")
	fs.IntVar(&f.o.Ports.Sockperf, "sockperf-port", 11111, "sockperf server port")
	fs.IntVar(&f.o.Ports.Connrate, "connrate-port", 7000, "connrate server port")
}

func newMeasureCommand() *cobra.Command {
	f := &measureFlags{}
	cmd := &cobra.Command{
		Use:   "measure",
		Short: "Measure one row once: iperf3 1 and 4 streams, sockperf ping-pong, connrate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, err := netip.ParseAddr(f.serverIP)
			if err != nil {
				return fmt.Errorf("%w: --server-ip: %w", errUsage, err)
			}
			f.o.ServerIP = ip
			s, err := measure(cmd.Context(), f.o)
			if err != nil {
				return fmt.Errorf("measure %s/%s: %w", f.o.Scenario, f.o.Row, err)
			}
			fast := ""
			if share, ok := fastShare(s.FastPath); ok {
				fast = fmt.Sprintf(", fast path %.1f%%", 100*share)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s/%s #%d: tcp x1 %.2f x4 %.2f Gbit/s, rr p50 %.1f p99 %.1f µs, %.0f conn/s, node fwd %d pkts%s\n",
				s.Scenario, s.Row, s.Rep, s.TCP1, s.TCP4, s.P50, s.P99, s.ConnPerSec, s.Forwarded, fast)
			if f.o.Out == "" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(s)
			}
			return appendSample(f.o.Out, s)
		},
	}
	f.AddFlags(cmd.Flags())
	return cmd
}

func newTableCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "table RESULTS",
		Short: "Print medians per scenario and row, ratios to the bare pair, and the issue's targets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return runTable(cmd.OutOrStdout(), f)
		},
	}
}

func runTable(w io.Writer, r io.Reader) error {
	samples, err := readSamples(r)
	if err != nil {
		return err
	}
	stats := aggregate(samples)
	if err := printTables(w, stats); err != nil {
		return err
	}
	if err := printFamilyRatios(w, stats); err != nil {
		return err
	}
	if err := printScenarioRatios(w, stats); err != nil {
		return err
	}
	printTargets(w, checkTargets(stats))
	return nil
}
