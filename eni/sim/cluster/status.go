package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// StatusReport is "veni sim status -o json".
type StatusReport struct {
	State State `json:"state"`
	Live  Live  `json:"live"`
}

// Status prints the live sim in dir: its nodes with their daemons and
// health, ENIs, vSwitches and the OpenAPI's calls and throttling by action
// and by window; as JSON (a StatusReport) with asJSON.
func Status(ctx context.Context, w io.Writer, dir string, asJSON bool) error {
	c, err := Connect(dir)
	if err != nil {
		return err
	}
	live, err := c.Live(ctx, true)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(StatusReport{State: c.State, Live: live})
	}
	printStatus(w, c.State, live, time.Now())
	return nil
}

func printStatus(w io.Writer, st State, live Live, now time.Time) {
	fmt.Fprintf(w, "sim %s: server pid %d since %s, region %s, vpc %s (%s)\n",
		st.Name, st.PID, st.Started.Format("2006-01-02 15:04:05Z"), st.Region, st.VPCID, st.VPCCIDR)
	fmt.Fprintf(w, "API %s  metadata %s  control %s\n", st.APIEndpoint, st.MetadataEndpoint, st.ControlEndpoint)
	var raised []string
	for _, k := range st.Kernel {
		if k.Now != k.Before {
			raised = append(raised, fmt.Sprintf("%s %d→%d", k.Key, k.Before, k.Now))
		}
	}
	if len(raised) > 0 {
		fmt.Fprintf(w, "kernel limits raised until sim down: %s\n", strings.Join(raised, ", "))
	}
	fmt.Fprintln(w)

	nodeOf := map[string]string{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tINSTANCE\tTYPE\tNETNS\tPRIMARY IP\tVSWITCH\tREADY\tDAEMON\tHEALTH\tDATAPATH")
	var problems []string
	for _, n := range live.Nodes {
		nodeOf[n.InstanceID] = n.Name
		health, datapath := "-", "-"
		if h := n.Health; h != nil {
			health, datapath = healthWord(h), orDash(h.Datapath)
			for _, p := range h.Problems {
				problems = append(problems, n.Name+": "+p)
			}
			if h.Error != "" {
				problems = append(problems, n.Name+": "+h.Error)
			}
		}
		ready := "no"
		if n.Ready {
			ready = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.InstanceID, n.InstanceType, n.NetNS, n.PrimaryIP, n.VSwitchID,
			ready, daemonWord(n.Daemon, now), health, datapath)
	}
	_ = tw.Flush()
	for _, p := range problems {
		fmt.Fprintln(w, "  ", p)
	}
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
	fmt.Fprintln(w)
	printAPI(w, live.Cloud, now)
	if live.Cloud.FabricErrors > 0 {
		fmt.Fprintf(w, "\nfabric errors: %d (last: %s)\n", live.Cloud.FabricErrors, live.Cloud.LastFabric)
	}
}

// daemonWord is the DAEMON column: "pid 123", "pid 123, 2 restarts",
// "down, restart in 3.9s (exit status 1)", or "-" without a daemon.
func daemonWord(d *ProcessStatus, now time.Time) string {
	if d == nil {
		return "-"
	}
	var s string
	if d.Alive {
		s = fmt.Sprintf("pid %d", d.PID)
	} else {
		s = "down"
		if !d.NextStart.IsZero() {
			s += ", restart in " + max(d.NextStart.Sub(now), 0).Round(100*time.Millisecond).String()
		}
		if d.LastExit != "" {
			s += " (" + d.LastExit + ")"
		}
	}
	switch {
	case d.Restarts == 1:
		s += ", 1 restart"
	case d.Restarts > 1:
		s += fmt.Sprintf(", %d restarts", d.Restarts)
	}
	return s
}

func healthWord(h *NodeHealth) string {
	switch {
	case h.Error != "":
		return "unknown"
	case h.Healthy:
		return "healthy"
	case len(h.Problems) == 1:
		return "1 problem"
	case len(h.Problems) > 1:
		return fmt.Sprintf("%d problems", len(h.Problems))
	}
	return "unhealthy" // veni status is content but the daemon is down
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
