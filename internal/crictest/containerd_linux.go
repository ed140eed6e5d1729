package crictest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// DirPrefix names the directory of every containerd this package starts,
// in os.TempDir(): short, for unix socket paths, and findable by a sweep.
const DirPrefix = "veni-crictest-"

// Options say where a containerd runs and which CNI files it uses.
type Options struct {
	// Name is for logs and errors, e.g. the node's name.
	Name string
	// NetNS is the path of the network namespace containerd runs in, and
	// with it every CNI plugin it calls: a simulated node's. Required.
	NetNS string
	// CNIBinDir holds the plugins (veni and loopback); CNIConfDir the
	// node's conflist, written before containerd starts (1.6 notices a new
	// file only by a write event in the directory).
	CNIBinDir  string
	CNIConfDir string
	// Ready is how long to wait for the CRI to report RuntimeReady and
	// NetworkReady; 0 means 30s.
	Ready time.Duration
}

// Containerd is one running containerd with its CRI plugin.
type Containerd struct {
	Name    string
	Dir     string // everything of this containerd lives here
	Address string // the CRI's gRPC socket
	CRI     *Client

	l      layout
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process is reaped
}

// StartContainerd starts a containerd inside opts.NetNS with its own
// config, imports the pause image, and waits until its CRI says the runtime
// and the network are ready. The test's cleanup removes every sandbox
// through the CRI, stops containerd and sweeps what is left, even when the
// test failed. Skips (fails in CI) without root or containerd.
func StartContainerd(tb testing.TB, opts Options) *Containerd {
	tb.Helper()
	return StartContainerds(tb, opts)[0]
}

// StartContainerds starts one containerd per opts at once (a node each),
// as StartContainerd does.
func StartContainerds(tb testing.TB, opts ...Options) []*Containerd {
	tb.Helper()
	RequireContainerd(tb)
	for _, o := range opts {
		for name, p := range map[string]string{"netns": o.NetNS, "cni bin dir": o.CNIBinDir, "cni conf dir": o.CNIConfDir} {
			if err := checkPath(name, p); err != nil {
				tb.Fatalf("containerd %s: %v", o.Name, err)
			}
		}
	}
	sweepStale(tb)
	hostDirs := newHostDirs()
	archive, err := pauseArchive()
	if err != nil {
		tb.Fatal(err)
	}
	cs := make([]*Containerd, len(opts))
	for i, o := range opts {
		dir, err := os.MkdirTemp("", DirPrefix)
		if err != nil {
			tb.Fatal(err)
		}
		c := &Containerd{Name: o.Name, Dir: dir, l: layout{dir: dir}, exited: make(chan struct{})}
		c.Address = c.l.grpc()
		tb.Cleanup(func() { c.stop(tb) })
		if err := writeOwner(dir); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(c.l.hostDirsFile(), []byte(strings.Join(hostDirs, "\n")), 0o600); err != nil {
			tb.Fatal(err)
		}
		if c.CRI, err = Dial(c.Address); err != nil {
			tb.Fatal(err)
		}
		cs[i] = c
	}
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = c.launch(opts[i], archive) })
	}
	wg.Wait()
	failed := false
	for i, err := range errs {
		if err != nil {
			tb.Errorf("containerd %s: %v\n%s", cs[i].Name, err, cs[i].LogTail(40))
			failed = true
		}
	}
	if failed {
		tb.FailNow()
	}
	return cs
}

// launch writes the config, starts containerd, waits for its CRI and
// imports the pause image.
func (c *Containerd) launch(o Options, archive []byte) error {
	if err := os.WriteFile(c.l.config(), []byte(configTOML(c.l, o.CNIBinDir, o.CNIConfDir)), 0o600); err != nil {
		return err
	}
	if err := c.start(o.NetNS); err != nil {
		return err
	}
	ready := o.Ready
	if ready == 0 {
		ready = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), ready)
	defer cancel()
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	return c.importPause(ctx, archive)
}

// Kubelet returns a kubelet stand-in on this containerd whose sandboxes go
// under this containerd's own cgroup parent.
func (c *Containerd) Kubelet() *Kubelet {
	return &Kubelet{CRI: c.CRI, CgroupParent: c.l.cgroupParent()}
}

// LogTail returns the last n lines of containerd's log.
func (c *Containerd) LogTail(n int) string {
	b, _ := os.ReadFile(c.l.log())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start forks containerd from a thread switched into netns only: runc
// needs the host's mount namespace (its /sys and cgroup mounts).
func (c *Containerd) start(netns string) error {
	log, err := os.OpenFile(c.l.log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("containerd", "--config", c.l.config())
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a ^C to the test does not reach it before
	// the cleanup has removed the sandboxes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ns.WithNetNSPath(netns, func(ns.NetNS) error { return cmd.Start() }); err != nil {
		return fmt.Errorf("start in %s: %w", netns, err)
	}
	c.cmd = cmd // set only once started: stop waits on it
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	return os.WriteFile(c.l.pidFile(), []byte(strconv.Itoa(c.cmd.Process.Pid)), 0o600)
}

// waitReady polls the CRI's Status until the runtime and the network (a
// CNI config loaded) are ready.
func (c *Containerd) waitReady(ctx context.Context) error {
	var last string
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("exited while starting (%s)", c.cmd.ProcessState)
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.CRI.Status(cctx)
		cancel()
		if err == nil {
			notReady := []string{}
			for _, cond := range st.GetConditions() {
				if !cond.GetStatus() {
					notReady = append(notReady, fmt.Sprintf("%s: %s %s", cond.GetType(), cond.GetReason(), cond.GetMessage()))
				}
			}
			if len(st.GetConditions()) > 0 && len(notReady) == 0 {
				return nil
			}
			last = strings.Join(notReady, "; ")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cri not ready: %s", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// importPause imports the pause image into the CRI's containerd namespace
// and waits until the CRI's image service has it.
func (c *Containerd) importPause(ctx context.Context, archive []byte) error {
	path := filepath.Join(c.Dir, "pause.tar")
	if err := os.WriteFile(path, archive, 0o600); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "ctr", "--address", c.Address, "--namespace", "k8s.io", "images", "import", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import pause image: %w\n%s", err, out)
	}
	for {
		img, err := c.CRI.ImageStatus(ctx, PauseImage)
		if err == nil && img != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pause image imported but not seen by the cri: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop is the cleanup: every sandbox removed through the CRI (shims
// outlive containerd), containerd stopped, then whatever is still there
// swept. A sandbox the CRI could not remove fails the test.
func (c *Containerd) stop(tb testing.TB) {
	tb.Helper()
	if c.cmd != nil && c.CRI != nil {
		select {
		case <-c.exited:
			tb.Errorf("containerd %s exited during the test (%s)\n%s", c.Name, c.cmd.ProcessState, c.LogTail(40))
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			if err := c.Kubelet().RemoveAll(ctx); err != nil {
				tb.Errorf("containerd %s: remove sandboxes at cleanup: %v", c.Name, err)
			}
			cancel()
		}
	}
	if c.CRI != nil {
		_ = c.CRI.Close()
	}
	if c.cmd != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	swept, err := sweepDir(c.Dir)
	if err != nil {
		tb.Errorf("containerd %s: sweep %s: %v", c.Name, c.Dir, err)
	}
	if len(swept) > 0 {
		tb.Logf("containerd %s: swept what it left: %s", c.Name, strings.Join(swept, "; "))
	}
}

// Mounts returns the mount points under the containerd's directory: a
// sandbox's network namespace, /dev/shm and rootfs while it lives.
func (c *Containerd) Mounts() []string {
	return mountsUnder(c.Dir)
}

// NetNSDir is where the CRI mounts sandboxes' network namespaces
// (netns_mounts_under_state_dir).
func (c *Containerd) NetNSDir() string {
	return filepath.Join(c.l.state(), "io.containerd.grpc.v1.cri", "netns")
}
