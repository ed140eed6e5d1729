package commands

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type simStatusOptions struct {
	*simGlobalOptions
	output string
}

func (o *simStatusOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
}

func newSimStatusCommand(g *simGlobalOptions) *cobra.Command {
	o := &simStatusOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the sim's nodes, ENIs and vSwitches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "text" && o.output != "json" {
				return fmt.Errorf("-o %q: want text or json", o.output)
			}
			return runSimStatus(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// simStatus is "veni sim status -o json".
type simStatus struct {
	State simState        `json:"state"`
	Live  simControlState `json:"live"`
}

func runSimStatus(ctx context.Context, w io.Writer, o *simStatusOptions) error {
	st, err := runningSim(o.dir)
	if err != nil {
		return err
	}
	var live simControlState
	if err := simControl(ctx, st, "GET", "/v1/state", nil, &live); err != nil {
		return err
	}
	if o.output == "json" {
		return writeJSON(w, simStatus{State: st, Live: live})
	}
	printSimStatus(w, st, live)
	return nil
}

func printSimStatus(w io.Writer, st simState, live simControlState) {
	fmt.Fprintf(w, "sim %s: server pid %d since %s, region %s, vpc %s (%s)\n",
		st.Name, st.PID, st.Started.Format("2006-01-02 15:04:05Z"), st.Region, st.VPCID, st.VPCCIDR)
	fmt.Fprintf(w, "API %s  metadata %s  control %s\n\n", st.APIEndpoint, st.MetadataEndpoint, st.ControlEndpoint)

	nodeOf := map[string]string{}
	for _, n := range live.Nodes {
		nodeOf[n.InstanceID] = n.Name
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tINSTANCE\tTYPE\tNETNS\tPRIMARY IP\tVSWITCH")
	for _, n := range live.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.InstanceID, n.InstanceType, n.NetNS, n.PrimaryIP, n.VSwitchID)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENI\tSTATUS\tNODE\tDEV\tMAC\tIPS")
	for _, e := range live.Cloud.ENIs {
		node, dev := "-", "-"
		if e.InstanceID != "" {
			node = nodeOf[e.InstanceID]
			if node == "" {
				node = e.InstanceID
			}
			dev = fmt.Sprintf("eth%d", e.DeviceIndex)
		}
		ips := make([]string, 0, len(e.IPs))
		for _, ip := range e.IPs {
			ips = append(ips, ip.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Status, node, dev, e.MAC, strings.Join(ips, ","))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VSWITCH\tZONE\tCIDR\tGATEWAY\tFREE\tTOTAL")
	for _, v := range live.Cloud.VSwitches {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", v.ID, v.ZoneID, v.CIDR, v.Gateway, v.Free, v.Total)
	}
	_ = tw.Flush()
	if live.Cloud.FabricErrors > 0 {
		fmt.Fprintf(w, "\nfabric errors: %d (last: %s)\n", live.Cloud.FabricErrors, live.Cloud.LastFabric)
	}
}
