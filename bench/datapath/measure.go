package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"
)

// measureOptions describe one measurement: one row of the table, once.
type measureOptions struct {
	Scenario    string     // "a" (clean node) or "b" (large host firewall)
	Row         string     // row key, e.g. "bare" or "ebpf-cross"; "bare" is the floor
	Label       string     // row text in the table
	Rep         int        // repetition number, for the record
	ClientNetNS string     // path of the client's network namespace
	ServerNetNS string     // path of the server's network namespace
	ServerIP    netip.Addr // the server's address, as the client reaches it
	NodeNetNS   []string   // namespaces whose forwarded packets are counted
	FastPathPin []string   // pin dirs of the nodes' eBPF fast path, whose counters are read
	Duration    time.Duration
	Out         string // results file, one JSON sample per line, appended
	Ports       ports
	// RRCPU, when >= 0, binds the request/response tools (sockperf and
	// connrate, client and server) to that CPU. Unbound, their latency
	// depends on whether the scheduler put both ends on one CPU: waking
	// the other CPU of a VM costs tens of µs, more than the datapath.
	RRCPU int
}

// ports the servers listen on inside the server namespace.
type ports struct {
	Iperf3   int
	Sockperf int
	Connrate int
}

func (o measureOptions) validate() error {
	switch {
	case o.Scenario == "" || o.Row == "":
		return fmt.Errorf("%w: --scenario and --row are required", errUsage)
	case o.ClientNetNS == "" || o.ServerNetNS == "":
		return fmt.Errorf("%w: --client-netns and --server-netns are required", errUsage)
	case !o.ServerIP.IsValid():
		return fmt.Errorf("%w: --server-ip is required", errUsage)
	case o.RRCPU >= runtime.NumCPU():
		return fmt.Errorf("%w: --rr-cpu %d: this machine has %d CPUs", errUsage, o.RRCPU, runtime.NumCPU())
	case o.Duration < time.Second:
		return fmt.Errorf("%w: --duration %s: at least 1s", errUsage, o.Duration)
	}
	return nil
}

// sample is one measurement of one row: a line of the results file.
type sample struct {
	Scenario   string    `json:"scenario"`
	Row        string    `json:"row"`
	Label      string    `json:"label"`
	Rep        int       `json:"rep"`
	Time       time.Time `json:"time"`
	TCP1       float64   `json:"tcp1Gbps"`   // iperf3, one stream, receiver side
	TCP4       float64   `json:"tcp4Gbps"`   // iperf3, four streams
	P50        float64   `json:"rrP50us"`    // sockperf TCP ping-pong round trip, median
	P99        float64   `json:"rrP99us"`    // and 99th percentile
	RRTool     string    `json:"rrTool"`     // "sockperf" (IPv4) or "pingpong" (IPv6: sockperf 3.7 takes no IPv6)
	ConnPerSec float64   `json:"connPerSec"` // connrate, one connection at a time
	ConnErrors int64     `json:"connErrors"` // connections that failed (counted, not fatal)
	Forwarded  uint64    `json:"forwarded"`  // packets the node namespaces' IP stacks forwarded meanwhile

	// FastPath are the changes of the fast path's counters ("FromPod.RedirectNeigh"), when measured.
	FastPath map[string]uint64 `json:"fastpath,omitempty"`
}

// measure runs every figure once, in a fixed order, and returns the
// sample. Each server starts in the server namespace before its client and
// is killed when the client is done.
func measure(ctx context.Context, o measureOptions) (sample, error) {
	if err := o.validate(); err != nil {
		return sample{}, err
	}
	s := sample{Scenario: o.Scenario, Row: o.Row, Label: o.Label, Rep: o.Rep, Time: time.Now().UTC()}
	if s.Label == "" {
		s.Label = s.Row
	}
	fwd0, err := sumForwarded(o.NodeNetNS)
	if err != nil {
		return s, err
	}
	var fp0 map[string]uint64
	if len(o.FastPathPin) > 0 {
		if fp0, err = fastpathCounters(o.FastPathPin); err != nil {
			return s, err
		}
	}
	if s.TCP1, s.TCP4, err = measureIperf3(ctx, o); err != nil {
		return s, err
	}
	lat, err := measureRR(ctx, o)
	if err != nil {
		return s, err
	}
	s.P50, s.P99 = lat.P50, lat.P99
	s.RRTool = "sockperf"
	if !o.ServerIP.Is4() {
		s.RRTool = "pingpong"
	}
	cr, err := measureConnrate(ctx, o)
	if err != nil {
		return s, err
	}
	s.ConnPerSec, s.ConnErrors = cr.PerSecond, cr.Errors
	fwd1, err := sumForwarded(o.NodeNetNS)
	if err != nil {
		return s, err
	}
	s.Forwarded = fwd1 - fwd0
	if len(o.FastPathPin) > 0 {
		fp1, err := fastpathCounters(o.FastPathPin)
		if err != nil {
			return s, err
		}
		s.FastPath = counterDelta(fp0, fp1)
	}
	return s, nil
}

func sumForwarded(paths []string) (uint64, error) {
	var sum uint64
	for _, p := range paths {
		n, err := forwarded(p)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// server is a benchmark server running inside the server namespace.
type server struct {
	cmd    *exec.Cmd
	out    bytes.Buffer  // stdout and stderr; read only after exited
	exited chan struct{} // closed once cmd is reaped
}

// startServer starts argv in nsPath, bound to cpu when >= 0, and waits
// until it listens on port.
func startServer(ctx context.Context, nsPath string, cpu, port int, argv ...string) (*server, error) {
	s := &server{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := startIn(nsPath, cpu, s.cmd); err != nil {
		return nil, err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := waitListening(ctx, nsPath, port, s.exited); err != nil {
		out := s.stop()
		return nil, fmt.Errorf("%s: %w\n%s", argv[0], err, tail(out, 10))
	}
	return s, nil
}

// stop kills the server's process group, waits for it and returns what it
// printed.
func (s *server) stop() []byte {
	_ = killGroup(s.cmd.Process.Pid)
	<-s.exited
	return s.out.Bytes()
}

// runClient runs argv in nsPath, bound to cpu when >= 0, to completion
// and returns its stdout.
func runClient(ctx context.Context, nsPath string, cpu int, timeout time.Duration, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	if err := startIn(nsPath, cpu, cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w\n%s%s", argv[0], err, tail(stderr.Bytes(), 10), tail(stdout.Bytes(), 10))
	}
	return stdout.Bytes(), nil
}

func measureIperf3(ctx context.Context, o measureOptions) (one, four float64, err error) {
	port := strconv.Itoa(o.Ports.Iperf3)
	srv, err := startServer(ctx, o.ServerNetNS, -1, o.Ports.Iperf3, "iperf3", "-s", "-B", o.ServerIP.String(), "-p", port)
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop()
	secs := strconv.Itoa(wholeSeconds(o.Duration))
	var gbps [2]float64
	for i, streams := range []string{"1", "4"} {
		out, err := runClient(ctx, o.ClientNetNS, -1, o.Duration+30*time.Second,
			"iperf3", "-c", o.ServerIP.String(), "-p", port, "-t", secs, "-P", streams, "-J", "--connect-timeout", "3000")
		if err != nil {
			// iperf3 -J puts its error in the JSON, not on stderr.
			if _, perr := parseIperf3(out); perr != nil {
				err = errors.Join(err, perr)
			}
			return 0, 0, fmt.Errorf("iperf3 %s streams: %w", streams, err)
		}
		bps, err := parseIperf3(out)
		if err != nil {
			return 0, 0, err
		}
		gbps[i] = bps / 1e9
	}
	return gbps[0], gbps[1], nil
}

// measureRR measures TCP request/response latency: sockperf for an IPv4
// server, pingpong (sockperf 3.7 takes no IPv6) for an IPv6 one.
func measureRR(ctx context.Context, o measureOptions) (latency, error) {
	if o.ServerIP.Is4() {
		return measureSockperf(ctx, o)
	}
	self, err := os.Executable()
	if err != nil {
		return latency{}, fmt.Errorf("find own binary: %w", err)
	}
	addr := netip.AddrPortFrom(o.ServerIP, uint16(o.Ports.Sockperf)).String()
	srv, err := startServer(ctx, o.ServerNetNS, o.RRCPU, o.Ports.Sockperf, self, "pingpong", "serve", "--listen", addr)
	if err != nil {
		return latency{}, err
	}
	defer srv.stop()
	out, err := runClient(ctx, o.ClientNetNS, o.RRCPU, o.Duration+30*time.Second,
		self, "pingpong", "run", "--to", addr, "--duration", o.Duration.String())
	if err != nil {
		return latency{}, err
	}
	var lat latency
	if err := json.Unmarshal(out, &lat); err != nil {
		return latency{}, fmt.Errorf("pingpong output: %w", err)
	}
	return lat, nil
}

func measureSockperf(ctx context.Context, o measureOptions) (latency, error) {
	port := strconv.Itoa(o.Ports.Sockperf)
	srv, err := startServer(ctx, o.ServerNetNS, o.RRCPU, o.Ports.Sockperf, "sockperf", "server", "--tcp", "-i", o.ServerIP.String(), "-p", port)
	if err != nil {
		return latency{}, err
	}
	defer srv.stop()
	// --full-rtt: sockperf otherwise reports half the round trip.
	out, err := runClient(ctx, o.ClientNetNS, o.RRCPU, o.Duration+30*time.Second,
		"sockperf", "ping-pong", "--tcp", "-i", o.ServerIP.String(), "-p", port,
		"-t", strconv.Itoa(wholeSeconds(o.Duration)), "-m", strconv.Itoa(connrateMessage), "--full-rtt")
	if err != nil {
		return latency{}, err
	}
	return parseSockperf(out)
}

func measureConnrate(ctx context.Context, o measureOptions) (connrateResult, error) {
	self, err := os.Executable()
	if err != nil {
		return connrateResult{}, fmt.Errorf("find own binary: %w", err)
	}
	addr := netip.AddrPortFrom(o.ServerIP, uint16(o.Ports.Connrate)).String()
	srv, err := startServer(ctx, o.ServerNetNS, o.RRCPU, o.Ports.Connrate, self, "connrate", "serve", "--listen", addr)
	if err != nil {
		return connrateResult{}, err
	}
	defer srv.stop()
	out, err := runClient(ctx, o.ClientNetNS, o.RRCPU, o.Duration+30*time.Second,
		self, "connrate", "run", "--to", addr, "--duration", o.Duration.String())
	if err != nil {
		return connrateResult{}, err
	}
	var r connrateResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("connrate output: %w", err)
	}
	if r.Errors > 0 {
		slog.Warn("connrate: failed connections", "row", o.Row, "errors", r.Errors, "completed", r.Connections)
	}
	return r, nil
}

// wholeSeconds rounds d up: iperf3 and sockperf take whole seconds.
func wholeSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// appendSample adds s to the results file as one JSON line.
func appendSample(path string, s sample) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("results file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("results file: %w", err)
	}
	return f.Close()
}

// tail returns the last n lines of b, for error messages.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
