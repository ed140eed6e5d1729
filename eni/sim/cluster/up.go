package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/veni-cni/veni/eni/sim/fabric"
)

// UpOptions describe the sim Up starts.
type UpOptions struct {
	Dir      string
	Name     string
	Spec     Spec
	Binary   string        // veni binary that serves ("veni sim serve"); "" is this program
	Timeout  time.Duration // for the server to be ready
	Progress io.Writer     // start-up progress lines; nil shows none
}

// Up starts a server ("veni sim serve") detached from this process, waits
// until it is ready, and prints how to use the sim to w. May return an
// error wrapping ErrRunning.
func Up(ctx context.Context, w io.Writer, o UpOptions) error {
	if os.Geteuid() != 0 {
		return errors.New("sim up needs root (it creates network namespaces)")
	}
	if err := o.Spec.Validate(); err != nil {
		return err
	}
	if st, err := Running(o.Dir); err == nil || errors.Is(err, ErrStateVersion) {
		return fmt.Errorf("%w: %s (pid %d, dir %s); run veni sim down first", ErrRunning, st.Name, st.PID, o.Dir)
	}
	lock, err := lockName(o.Name)
	if err != nil {
		return fmt.Errorf("%w; run veni sim down (with that sim's --dir)", err)
	}
	// The server takes the lock itself; holding it here only checks.
	lock.Close()
	if _, err := os.Stat(fabric.NetNSPath(fabric.VPCNetNSName(o.Name))); err == nil {
		return fmt.Errorf("%w: namespace %s exists without a server (a crashed sim?); run veni sim down --name %s", ErrRunning, fabric.VPCNetNSName(o.Name), o.Name)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("sim dir: %w", err)
	}
	// Files left by a crash would look like a ready or starting server.
	for _, f := range []string{StateFile, ProgressFile} {
		_ = os.Remove(filepath.Join(o.Dir, f))
	}
	specPath := filepath.Join(o.Dir, SpecFile)
	if err := writeJSONFile(specPath, o.Spec, 0o600); err != nil {
		return fmt.Errorf("write sim spec: %w", err)
	}
	bin, err := binary(o.Binary)
	if err != nil {
		return err
	}
	logPath := filepath.Join(o.Dir, LogFile)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open sim log: %w", err)
	}
	defer logFile.Close()
	// Not CommandContext: the server must outlive this command.
	server := exec.Command(string(bin), "sim", "serve", "--dir", o.Dir, "--name", o.Name, "--spec", specPath)
	server.Stdout, server.Stderr = logFile, logFile
	server.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := server.Start(); err != nil {
		return fmt.Errorf("start sim server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()

	st, err := waitReady(ctx, o, server.Process.Pid, exited)
	if err != nil {
		_ = server.Process.Signal(syscall.SIGTERM)
		return fmt.Errorf("%w\n--- %s ---\n%s", err, logPath, tailFile(logPath, 20))
	}
	printUp(w, st)
	return nil
}

// progressAfter is how long a start-up runs before Up shows its progress:
// a few nodes come up sooner and need no progress lines.
const progressAfter = time.Second

// waitReady waits until the server published its state (it does so once
// every listener is up) and its control endpoint answers, showing the
// start-up's progress meanwhile when it takes long.
func waitReady(ctx context.Context, o UpOptions, pid int, exited <-chan error) (State, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var shown progressShower
	for {
		select {
		case err := <-exited:
			return State{}, fmt.Errorf("sim server exited during start-up: %v", err)
		case <-ctx.Done():
			return State{}, fmt.Errorf("sim server not ready after %s (a larger --timeout for many nodes?)", o.Timeout)
		case <-tick.C:
		}
		if p, err := readProgress(o.Dir); err == nil && o.Progress != nil && time.Since(start) > progressAfter {
			shown.show(o.Progress, p)
		}
		st, err := ReadState(o.Dir)
		if err != nil || st.PID != pid {
			continue
		}
		c, err := NewClient(st)
		if err != nil {
			continue
		}
		if _, err := c.Live(ctx, false); err == nil {
			return st, nil
		}
	}
}

// progressShower prints a line when a phase starts and every tenth of the
// way, so a hundred nodes make about ten lines per phase.
type progressShower struct {
	last Progress
}

func (s *progressShower) show(w io.Writer, p Progress) {
	step := max(1, p.Total/10)
	if p.Phase == s.last.Phase && p.Done < s.last.Done+step && p.Done != p.Total {
		return
	}
	if p == s.last {
		return
	}
	s.last = p
	fmt.Fprintf(w, "%s: %d/%d\n", p.Phase, p.Done, p.Total)
}

func printUp(w io.Writer, st State) {
	fmt.Fprintf(w, "sim %s is up (server pid %d, log %s)\n\n", st.Name, st.PID, filepath.Join(st.Dir, LogFile))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tINSTANCE\tTYPE\tNETNS\tPRIMARY IP\tMAC\tVSWITCH")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.InstanceID, n.InstanceType, n.NetNS, n.PrimaryIP, n.MAC, n.VSwitchID)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nregion       %s, vpc %s (%s)\n", st.Region, st.VPCID, st.VPCCIDR)
	fmt.Fprintf(w, "API          %s (scheme http, region %s; reachable from the nodes)\n", st.APIEndpoint, st.Region)
	fmt.Fprintf(w, "metadata     %s (answers per node, by source address)\n", st.MetadataEndpoint)
	fmt.Fprintf(w, "control      %s (veni sim status|fault; token in %s)\n", st.ControlEndpoint, filepath.Join(st.Dir, TokenFile))
	fmt.Fprintf(w, "credentials  %s\n\n", st.Credentials)
	first := "node-1"
	if len(st.Nodes) > 0 {
		first = st.Nodes[0].Name
	}
	fmt.Fprintf(w, "Run commands on a node:  veni sim exec %s -- ip -br addr\n", first)
	fmt.Fprintf(w, "                         veni sim exec %s -- veni eni list --endpoint %s --scheme http --region %s --credentials %s\n",
		first, strings.TrimPrefix(st.APIEndpoint, "http://"), st.Region, st.Credentials)
	fmt.Fprintln(w, "Stop and clean up:       veni sim down")
}

// tailFile returns the last n lines of a file, for error reports.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
