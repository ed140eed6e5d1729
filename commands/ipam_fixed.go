package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// newIPAMFixedCommand is "veni ipam fixed": the fixed ENIs (PodNetworking
// allocationType Fixed) of the region as the cloud has them, and the
// operator's way to give one back.
func newIPAMFixedCommand(o *ipamOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fixed",
		Short: "List the fixed-IP ENIs of the region, or release one (PodNetworking allocationType Fixed)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list [NAMESPACE/POD]",
		Short: "List the fixed ENIs veni created in the region: pod, address, where attached or parked, release time",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			pod := ""
			if len(args) == 1 {
				if pod, err = podArg(args[0]); err != nil {
					return err
				}
			}
			return runIPAMFixedList(cmd.Context(), cmd.OutOrStdout(), env, pod, o.output)
		},
	}, &cobra.Command{
		Use:   "release NAMESPACE/POD",
		Short: "Delete the fixed ENIs of a pod that is gone (its address is given back to the vSwitch; a new pod of that name gets a new one)",
		Long: `release deletes the pod's fixed ENIs: those parked in the cloud (Available)
and those kept on this node for a pod that went. It is how an ENI of
releaseStrategy Never is given back, and how a pod whose fixed ENI is in
another zone gets a new one. An ENI attached to another node, or held by a
running pod here, is left alone and named: release it there once its pod
is gone.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := o.env()
			if err != nil {
				return err
			}
			pod, err := podArg(args[0])
			if err != nil {
				return err
			}
			return runIPAMFixedRelease(cmd.Context(), cmd.OutOrStdout(), env, pod)
		},
	})
	return cmd
}

func podArg(s string) (string, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q: want NAMESPACE/POD", s)
	}
	return s, nil
}

func runIPAMFixedList(ctx context.Context, w io.Writer, env *node.Env, pod, output string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	all, err := ipam.ListFixed(ctx, env.Store, env.Cloud(), pod)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(w, all)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENI\tPOD\tIP\tZONE\tSTATUS\tINSTANCE\tPARKED BY\tRELEASE\tHERE")
	for _, f := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Tags[ipam.TagPod], f.PrimaryIP, f.ZoneID, fixedStatus(f.ENI),
			dash(f.InstanceID), dash(f.Tags[ipam.TagFixedParkedBy]), dash(f.Tags[ipam.TagFixedReleaseAt]), dash(f.Here))
	}
	return tw.Flush()
}

// fixedStatus is the cloud's status of a fixed ENI, Available ones called
// parked (waiting for their pod) and members named so.
func fixedStatus(e eni.ENI) string {
	switch {
	case e.Status == eni.StatusAvailable:
		return "parked"
	case e.Type == eni.TypeMember:
		return e.Status + " (member)"
	}
	return e.Status
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runIPAMFixedRelease(ctx context.Context, w io.Writer, env *node.Env, pod string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	facts, err := env.Facts(ctx)
	if err != nil {
		return fmt.Errorf("node facts: %w", err)
	}
	n := env.IPAMNode(facts)
	n.Holder = "veni ipam fixed release"
	deleted, err := ipam.ReleaseFixed(ctx, env.Store, env.Cloud(), n, env.Config, pod)
	for _, id := range deleted {
		fmt.Fprintf(w, "deleted fixed eni %s of %s\n", id, pod)
	}
	if errors.Is(err, store.ErrLeaseHeld) {
		return fmt.Errorf("%w (another veni process calls the cloud for this node; try again in a moment)", err)
	}
	if err == nil && len(deleted) == 0 {
		fmt.Fprintf(w, "%s has no fixed eni\n", pod)
	}
	return err
}
