package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podpolicy"
	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

type policyOptions struct {
	config string
	output string
}

func (o *policyOptions) env() (*node.Env, error) {
	if o.output != "text" && o.output != "json" {
		return nil, fmt.Errorf("output %q: want text or json", o.output)
	}
	return node.Load(o.config)
}

func newPolicyCommand() *cobra.Command {
	o := &policyOptions{}
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show this node's compiled NetworkPolicy and trace flows through it",
	}
	cmd.PersistentFlags().StringVar(&o.config, "config", envOr("VENI_CONFIG", node.DefaultConfigPath), "node configuration file; names the store [$VENI_CONFIG]")
	cmd.PersistentFlags().StringVarP(&o.output, "output", "o", "text", "text or json")
	cmd.AddCommand(newPolicyShowCommand(o), newPolicyTraceCommand(o), newPolicyDropsCommand(o))
	return cmd
}

func newPolicyShowCommand(o *policyOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show [NAMESPACE/]POD",
		Short: "Show a local pod's compiled policy: the policies selecting it per direction and what they allow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			ep, err := policy.ParseEndpoint(args[0])
			if err != nil || ep.Pod == nil {
				return fmt.Errorf("pod %q: want NAMESPACE/POD or POD (namespace default)", args[0])
			}
			r, err := podpolicy.Show(env.Store, *ep.Pod)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			return r.WriteText(cmd.OutOrStdout())
		},
	}
}

func newPolicyTraceCommand(o *policyOptions) *cobra.Command {
	var from, to, port string
	cmd := &cobra.Command{
		Use:   "trace --from POD|IP --to POD|IP --port N/PROTO",
		Short: "Say whether a new connection is allowed, and which policy rule decided each side",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			src, err := policy.ParseEndpoint(from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			dst, err := policy.ParseEndpoint(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			proto, num, err := parseFlowPort(port)
			if err != nil {
				return err
			}
			if err := notServiceAddress(env.Config.ServicePrefixes(), dst); err != nil {
				return err
			}
			tr, err := podpolicy.Trace(env.Store, src, dst, proto, num)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), tr)
			}
			return tr.WriteText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "client: NAMESPACE/POD, POD (namespace default) or an address")
	cmd.Flags().StringVar(&to, "to", "", "server: NAMESPACE/POD, POD or an address")
	cmd.Flags().StringVar(&port, "port", "", "destination port and protocol: 80/TCP, 53/udp, 80 (TCP)")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.MarkFlagRequired("port")
	return cmd
}

// notServiceAddress refuses a Service address as --to: the enforcer does
// not decide a flow to a ClusterIP against the ClusterIP but against the
// backend the host's DNAT picks, so a trace of the ClusterIP would answer
// a question the kernel never asks.
func notServiceAddress(services []netip.Prefix, dst policy.Endpoint) error {
	if !dst.IP.IsValid() {
		return nil
	}
	for _, p := range services {
		if p.Contains(dst.IP) {
			return fmt.Errorf("--to %s is in the Service CIDR %s: a pod's egress to a Service is decided against the backend pod after the host's DNAT, not against the ClusterIP; trace a backend instead (--to NAMESPACE/POD)", dst.IP, p)
		}
	}
	return nil
}

// parseFlowPort reads "80/TCP", "53/udp" or "80" (TCP).
func parseFlowPort(s string) (policy.Protocol, uint16, error) {
	num, proto, found := strings.Cut(s, "/")
	if !found {
		proto = "TCP"
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("--port %q: want a port 1-65535 and a protocol, like 80/TCP", s)
	}
	p, err := policy.ParseTraceProtocol(strings.ToUpper(proto))
	if err != nil {
		return 0, 0, fmt.Errorf("--port %q: %w", s, err)
	}
	return p, uint16(n), nil
}

func newPolicyDropsCommand(o *policyOptions) *cobra.Command {
	var count int
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "drops",
		Short: "Stream the packets the policy enforcer drops: time, pod, direction, 5-tuple, reason",
		Long: `Stream drop events from the node's policy enforcer until interrupted,
--count events or --for elapsed. The ring buffer has one reader position:
run one "veni policy drops" per node at a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			var facts store.NodeInfo
			if err := env.Store.View(func(tx *store.ReadTx) error {
				facts, err = tx.Node()
				return err
			}); err != nil {
				return fmt.Errorf("this node's facts are not in the store yet (no pod was added, no daemon ran): %w", err)
			}
			ds, err := podpolicy.OpenDrops(env.Store, env.Config, facts.InstanceID)
			if err != nil {
				return err
			}
			defer ds.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			out := cmd.OutOrStdout()
			for n := 0; count == 0 || n < count; n++ {
				d, err := ds.Next(ctx)
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if o.output == "json" {
					if err := json.NewEncoder(out).Encode(d); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintln(out, d.String())
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many drops (0: no limit)")
	cmd.Flags().DurationVar(&wait, "for", 0, "stop after this long (0: until interrupted)")
	return cmd
}
