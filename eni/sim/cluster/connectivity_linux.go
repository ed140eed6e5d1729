package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/veni-cni/veni/eni/sim/pods"
)

// probeConcurrency bounds the probes a Probe has in flight at once.
const probeConcurrency = 48

// ProbeOptions say what a Probe sends: each protocol to each port, from
// every pod (and with FromNodes every node) to every pod.
type ProbeOptions struct {
	Timeout   time.Duration // per probe
	Protocols []string      // pods.TCP, UDP, SCTP; none is TCP
	Ports     []int         // none is pods.ProbePort
	FromNodes bool          // probe from each node's own namespace too
}

func (o ProbeOptions) withDefaults() ProbeOptions {
	if len(o.Protocols) == 0 {
		o.Protocols = []string{pods.TCP}
	}
	if len(o.Ports) == 0 {
		o.Ports = []int{pods.ProbePort}
	}
	return o
}

// Endpoint is one end of a probe: a pod ("namespace/name") or a node.
type Endpoint struct {
	Name  string     `json:"name"`
	Kind  string     `json:"kind"` // "pod" or "node"
	Node  string     `json:"node"`
	IP    netip.Addr `json:"ip"`
	netns string
}

// Probe is one protocol to one port.
type ProbeKind struct {
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
}

// Matrix is the result of a Probe.
type Matrix struct {
	Sources []Endpoint  `json:"sources"` // the pods, then the nodes with FromNodes
	Targets []Endpoint  `json:"targets"` // the pods
	Probes  []ProbeKind `json:"probes"`
	// Errs[k][i][j]: probe k from Sources[i] to Targets[j]; nil is success
	// and so is a pod to itself, which is not probed.
	Errs [][][]error `json:"-"`
}

// Probe starts a server for every protocol and port in every pod, then
// probes every pod from every source, a few probes at a time, each within
// the timeout.
func Probe(ctx context.Context, all []PodRecord, nodes []Node, o ProbeOptions) (*Matrix, error) {
	o = o.withDefaults()
	m := &Matrix{}
	for _, p := range all {
		e := Endpoint{Name: p.Pod.Namespace + "/" + p.Pod.Name, Kind: "pod", Node: p.Node, IP: p.IP, netns: p.Pod.NetNS}
		m.Sources = append(m.Sources, e)
		m.Targets = append(m.Targets, e)
	}
	if o.FromNodes {
		for _, n := range nodes {
			m.Sources = append(m.Sources, Endpoint{Name: n.Name, Kind: "node", Node: n.Name, IP: n.PrimaryIP, netns: n.NetNSPath})
		}
	}
	for _, proto := range o.Protocols {
		for _, port := range o.Ports {
			m.Probes = append(m.Probes, ProbeKind{Protocol: proto, Port: port})
		}
	}
	var servers []io.Closer
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, p := range m.Targets {
		for _, k := range m.Probes {
			s, err := pods.ServeOn(p.netns, p.IP, k.Protocol, k.Port)
			if err != nil {
				return nil, err
			}
			servers = append(servers, s)
		}
	}
	m.Errs = make([][][]error, len(m.Probes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeConcurrency)
	for k, pk := range m.Probes {
		m.Errs[k] = make([][]error, len(m.Sources))
		for i, from := range m.Sources {
			m.Errs[k][i] = make([]error, len(m.Targets))
			for j, to := range m.Targets {
				if from.Kind == "pod" && i == j {
					continue
				}
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					m.Errs[k][i][j] = pods.DialOn(ctx, from.netns, to.IP, pk.Protocol, pk.Port, o.Timeout)
				}()
			}
		}
	}
	wg.Wait()
	return m, nil
}

// Failures lists every failed probe.
func (m *Matrix) Failures() []error {
	var out []error
	for k, pk := range m.Probes {
		for i, row := range m.Errs[k] {
			for j, err := range row {
				if err != nil {
					out = append(out, fmt.Errorf("%s (%s) -> %s (%s) %s/%d: %w", m.Sources[i].Name, m.Sources[i].Node, m.Targets[j].Name, m.Targets[j].Node, pk.Protocol, pk.Port, err))
				}
			}
		}
	}
	return out
}

// probes counts the probes sent.
func (m *Matrix) probes() int {
	n := 0
	for k := range m.Probes {
		for i, row := range m.Errs[k] {
			for j := range row {
				if !(m.Sources[i].Kind == "pod" && i == j) {
					n++
				}
			}
		}
	}
	return n
}

// MatrixResult is one probe of a Matrix in its JSON form.
type MatrixResult struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// MatrixJSON is what "veni sim connectivity -o json" prints.
type MatrixJSON struct {
	Sources []Endpoint     `json:"sources"`
	Targets []Endpoint     `json:"targets"`
	Probes  []ProbeKind    `json:"probes"`
	Results []MatrixResult `json:"results"` // every probe sent; a pod to itself is not
}

// JSON returns the matrix in its JSON form.
func (m *Matrix) JSON() MatrixJSON {
	out := MatrixJSON{Sources: m.Sources, Targets: m.Targets, Probes: m.Probes, Results: []MatrixResult{}}
	for k, pk := range m.Probes {
		for i, row := range m.Errs[k] {
			for j, err := range row {
				if m.Sources[i].Kind == "pod" && i == j {
					continue
				}
				r := MatrixResult{From: m.Sources[i].Name, To: m.Targets[j].Name, Protocol: pk.Protocol, Port: pk.Port, OK: err == nil}
				if err != nil {
					r.Error = err.Error()
				}
				out.Results = append(out.Results, r)
			}
		}
	}
	return out
}

// PrintJSON writes the matrix as JSON. May return an error wrapping
// ErrConnectivity when a probe failed.
func (m *Matrix) PrintJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m.JSON()); err != nil {
		return err
	}
	if fails := m.Failures(); len(fails) > 0 {
		return fmt.Errorf("%w: %d of %d probes", ErrConnectivity, len(fails), m.probes())
	}
	return nil
}

// Print writes one table per protocol and port (titled when there are
// several) and a summary line. May return an error wrapping
// ErrConnectivity when a probe failed.
func (m *Matrix) Print(w io.Writer) error {
	for k, pk := range m.Probes {
		if len(m.Probes) > 1 {
			fmt.Fprintf(w, "# %s/%d\n", pk.Protocol, pk.Port)
		}
		tw := tabwriter.NewWriter(w, 0, 2, 1, ' ', 0)
		fmt.Fprint(tw, "FROM \\ TO")
		for _, p := range m.Targets {
			fmt.Fprintf(tw, "\t%s", podName(p.Name))
		}
		fmt.Fprintln(tw)
		for i, row := range m.Errs[k] {
			src := m.Sources[i]
			if src.Kind == "pod" {
				fmt.Fprintf(tw, "%s@%s", podName(src.Name), src.Node)
			} else {
				fmt.Fprintf(tw, "(node)@%s", src.Node)
			}
			for j, err := range row {
				switch {
				case src.Kind == "pod" && i == j:
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
	}
	fails := m.Failures()
	n := m.probes()
	if len(m.Probes) == 1 && m.Probes[0].Protocol == pods.TCP && len(m.Sources) == len(m.Targets) {
		fmt.Fprintf(w, "%d of %d pod pairs connected over TCP\n", n-len(fails), n)
	} else {
		fmt.Fprintf(w, "%d of %d probes passed\n", n-len(fails), n)
	}
	for _, err := range fails {
		fmt.Fprintln(w, "  ", err)
	}
	if len(fails) > 0 {
		return fmt.Errorf("%w: %d of %d probes", ErrConnectivity, len(fails), n)
	}
	return nil
}

// podName is a pod's name without its namespace, as the table shows it.
func podName(full string) string {
	for i := range full {
		if full[i] == '/' {
			return full[i+1:]
		}
	}
	return full
}
