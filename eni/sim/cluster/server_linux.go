package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric"
)

// ServeOptions describe the sim a server runs.
type ServeOptions struct {
	Dir    string       // the sim directory
	Name   string       // prefix of its namespaces
	Spec   Spec         // what to build
	Binary string       // veni binary of the nodes' daemons and CNI bin dir; "" is this program
	Log    *slog.Logger // nil logs to stderr
}

// daemonStopGrace is how long a node's daemon may take to stop on SIGTERM.
const daemonStopGrace = 5 * time.Second

// Serve runs the sim in the foreground until ctx ends: it builds the fabric
// and the cloud, starts the nodes, serves the API and metadata inside the
// VPC namespace and the control endpoint on loopback, publishes state.json,
// and on return tears everything down. May return an error wrapping
// ErrRunning when a server of that name runs.
func Serve(ctx context.Context, o ServeOptions) (err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("sim", o.Name)
	}
	if err := o.Spec.Validate(); err != nil {
		return err
	}
	bin, err := binary(o.Binary)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("sim dir: %w", err)
	}
	lock, err := lockName(o.Name)
	if err != nil {
		return err
	}
	defer lock.Close() // released only after teardown, deferred below
	s := &server{log: log, dir: o.Dir, name: o.Name, spec: o.Spec, bin: bin}
	s.progress = progress{path: filepath.Join(o.Dir, ProgressFile), log: log}
	// The kernel's limits first: a sim that cannot have them must not
	// start at all. Teardown lowers them again.
	limits, err := KernelLimits(o.Spec)
	if err != nil {
		return err
	}
	sysctl := kernelSysctls(log)
	kernel, err := sysctl.raise(o.Name, limits)
	if err != nil {
		log.Error("kernel limits", "err", err)
		return err
	}
	defer func() {
		if rerr := sysctl.release(o.Name); rerr != nil {
			log.Error("restore kernel limits", "err", rerr)
			err = errors.Join(err, rerr)
		}
	}()
	if err := raiseNoFile(fdsPerNode*int64(o.Spec.Nodes) + fdsHeadroom); err != nil {
		log.Error("open files limit", "err", err)
		return err
	}
	s.state.Kernel = kernel
	defer func() {
		if terr := s.teardown(); terr != nil {
			log.Error("teardown", "err", terr)
			err = errors.Join(err, terr)
		}
	}()
	if err := s.start(); err != nil {
		log.Error("start", "err", err)
		return err
	}
	log.Info("sim ready", "nodes", len(s.state.Nodes), "control", s.state.ControlEndpoint)
	errc := make(chan error, len(s.servers))
	for _, h := range s.servers {
		go func() { errc <- h.srv.Serve(h.l) }()
	}
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx))
		return nil
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	}
}

// server is one running sim: fabric, cloud, the three HTTP faces and the
// nodes' daemons.
type server struct {
	log      *slog.Logger
	dir      string
	name     string
	spec     Spec
	bin      veniBin
	progress progress

	fab     *fabric.Fabric
	cloud   *sim.Cloud
	servers []httpFace
	closers []io.Closer // other listeners (the kube api relay), closed at teardown
	state   State
	daemons []*Supervisor // by node index; nil without daemons
}

// httpFace is one HTTP face with the socket it serves on, which may live in
// another namespace than the server's goroutines.
type httpFace struct {
	srv *http.Server
	l   net.Listener
}

func (s *server) start() error {
	cfg := s.spec.CloudConfig()
	akID, secret := "LTAI"+sim.RandomID(20), sim.RandomID(30)
	credPath := filepath.Join(s.dir, CredentialsFile)
	if err := writeJSONFile(credPath, map[string]string{"AccessKeyId": akID, "AccessKeySecret": secret}, 0o600); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	cfg.Credentials = map[string]string{akID: secret}
	token, err := newToken(s.dir)
	if err != nil {
		return err
	}

	cidrs := make([]netip.Prefix, 0, len(cfg.VSwitches))
	var cidrs6 []netip.Prefix
	for _, v := range cfg.VSwitches {
		cidrs = append(cidrs, v.CIDR)
		if v.IPv6CIDR.IsValid() {
			cidrs6 = append(cidrs6, v.IPv6CIDR)
		}
	}
	fab, err := fabric.New(fabric.Options{Name: s.name, VPCCIDR: cfg.VPCCIDR, VSwitches: cidrs, IPv6CIDRs: cidrs6})
	if err != nil {
		return fmt.Errorf("build fabric: %w", err)
	}
	s.fab = fab
	cfg.Fabric = fab
	cloud, err := sim.New(cfg)
	if err != nil {
		return fmt.Errorf("build cloud: %w", err)
	}
	s.cloud = cloud

	s.state = State{
		Kernel:  s.state.Kernel,
		Version: StateVersion, PID: os.Getpid(), Name: s.name, Dir: s.dir, Started: time.Now().UTC(),
		Region: cfg.RegionID, VPCID: cfg.VPCID, VPCCIDR: cfg.VPCCIDR, VPCNetNS: fab.VPCNetNS(),
		VSwitches:        cfg.VSwitches,
		APIEndpoint:      "http://" + fabric.APIAddr.String(),
		MetadataEndpoint: "http://" + fabric.MetadataAddr.String(),
		Credentials:      credPath,
	}
	if err := s.addNodes(cfg.VSwitches); err != nil {
		return err
	}

	// The API and metadata listen inside the VPC, where the nodes reach
	// them; the control endpoint on the host's loopback, for veni sim.
	api, err := fab.Listen("tcp", netip.AddrPortFrom(fabric.APIAddr, 80).String())
	if err != nil {
		return err
	}
	s.serve(api, cloud.APIHandler())
	md, err := fab.Listen("tcp", netip.AddrPortFrom(fabric.MetadataAddr, 80).String())
	if err != nil {
		return err
	}
	s.serve(md, cloud.MetadataHandler())
	if k := s.spec.Kube; k != nil {
		l, err := fab.Listen("tcp", netip.AddrPortFrom(fabric.MetadataAddr, KubeAPIPort).String())
		if err != nil {
			return err
		}
		s.closers = append(s.closers, l)
		if err := relayKubeAPI(l, k.Server, s.log); err != nil {
			return err
		}
	}
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}
	s.serve(ctl, newControlHandler(token, &control{cloud: cloud, nodes: s.nodeStatus, log: s.log}))
	s.state.ControlEndpoint = "http://" + ctl.Addr().String()

	if err := s.prepareNodes(); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(s.dir, StateFile), s.state, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// addNodes creates the nodes, a few at a time: each node's namespace
// first, as the cloud wires the primary ENI into it while AddInstance runs.
func (s *server) addNodes(vsws []sim.VSwitchSpec) error {
	nodes := make([]Node, s.spec.Nodes)
	ok := make([]bool, s.spec.Nodes)
	s.progress.begin("nodes", s.spec.Nodes)
	err := forEach(s.spec.Nodes, s.spec.concurrency(), func(i int) error {
		n, err := s.addNode(fmt.Sprintf("node-%d", i+1), vsws[i%len(vsws)].ID)
		if err != nil {
			return err
		}
		nodes[i], ok[i] = n, true
		s.log.Info("node up", "node", n.Name, "instance", n.InstanceID, "ip", n.PrimaryIP, "netns", n.NetNS)
		s.progress.step()
		return nil
	})
	// Teardown needs the nodes that exist, also after a failure.
	for i, n := range nodes {
		if ok[i] {
			s.state.Nodes = append(s.state.Nodes, n)
		}
	}
	return err
}

func (s *server) addNode(name, vswID string) (Node, error) {
	id := "i-" + sim.RandomID(20)
	fn, err := s.fab.AddNode(name, id)
	if err != nil {
		return Node{}, err
	}
	inst, err := s.cloud.AddInstance(sim.InstanceSpec{ID: id, Hostname: name, Type: s.spec.InstanceType, VSwitchID: vswID})
	if err != nil {
		return Node{}, fmt.Errorf("add %s: %w", name, err)
	}
	return Node{
		Name: name, InstanceID: inst.ID, InstanceType: inst.Type, NetNS: fn.NetNS, NetNSPath: fn.NetNSPath,
		PrimaryENIID: inst.PrimaryENIID, PrimaryIP: inst.PrimaryIP, MAC: inst.PrimaryMAC.String(), VSwitchID: inst.VSwitchID,
	}, nil
}

// prepareNodes gives every node what "veni install" gives a real one and,
// unless disabled, starts its daemon, a few nodes at a time. The daemons
// start once the API and metadata listen, so their first pass finds the
// cloud.
func (s *server) prepareNodes() error {
	if err := linkCNIBin(s.state.CNIBin(), string(s.bin)); err != nil {
		return err
	}
	s.daemons = make([]*Supervisor, len(s.state.Nodes))
	phase := "node files"
	if s.spec.Daemons {
		phase = "daemons"
	}
	s.progress.begin(phase, len(s.state.Nodes))
	return forEach(len(s.state.Nodes), s.spec.concurrency(), func(i int) error {
		n := s.state.Nodes[i]
		p, err := writeNodeFiles(s.state, n, s.spec)
		if err != nil {
			return err
		}
		if s.spec.Daemons {
			argv := []string{string(s.bin), "daemon", "--config", p.Config, "--sync-interval", s.spec.DaemonSyncInterval.String(), "--node-name", n.Name}
			if s.spec.DaemonConflist {
				argv = append(argv, "--cni-conf-dir", p.ConfDir)
			}
			if s.spec.Kube != nil {
				kc, err := nodeKubeconfig(*s.spec.Kube, n.Name)
				if err != nil {
					return err
				}
				path := filepath.Join(p.Dir, "kubeconfig")
				if err := writeFileAtomic(path, kc, 0o600); err != nil {
					return fmt.Errorf("node %s kubeconfig: %w", n.Name, err)
				}
				argv = append(argv, "--kubeconfig", path)
			}
			d, err := Supervise(Process{
				Name:  n.Name + "/daemon",
				Argv:  argv,
				NetNS: n.NetNSPath,
				Log:   p.Log,
			}, DefaultBackoff, s.log)
			if err != nil {
				return fmt.Errorf("start daemon on %s: %w", n.Name, err)
			}
			s.daemons[i] = d
			s.log.Info("daemon started", "node", n.Name, "pid", d.Status().PID, "log", p.Log)
		}
		s.progress.step()
		return nil
	})
}

func (s *server) serve(l net.Listener, h http.Handler) {
	s.servers = append(s.servers, httpFace{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, l: l})
}

// nodeStatus is the control endpoint's view of the nodes; with health it
// runs "veni status" in every node, a few at a time.
func (s *server) nodeStatus(ctx context.Context, health bool) []NodeStatus {
	out := make([]NodeStatus, len(s.state.Nodes))
	for i, n := range s.state.Nodes {
		out[i].Node = n
		out[i].Ready = nodeReady(s.state.Paths(n.Name))
		if i < len(s.daemons) && s.daemons[i] != nil {
			st := s.daemons[i].Status()
			out[i].Daemon = &st
		}
	}
	if !health {
		return out
	}
	forAll(len(out), s.spec.concurrency(), func(i int) {
		h := s.bin.health(ctx, out[i].Node, s.state.Paths(out[i].Name))
		if d := out[i].Daemon; d != nil && !d.Alive {
			h.Healthy = false
		}
		out[i].Health = &h
	})
	return out
}

// teardown stops in dependency order: daemons before the pods and pins
// they use; an open socket keeps the VPC namespace alive, so the servers
// close before the fabric.
func (s *server) teardown() error {
	var (
		mu   sync.Mutex
		errs []error
	)
	addErr := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	forAll(len(s.daemons), s.spec.concurrency(), func(i int) {
		if d := s.daemons[i]; d != nil {
			addErr(d.Stop(daemonStopGrace))
		}
	})
	for _, c := range s.closers {
		_ = c.Close()
	}
	forAll(len(s.state.Nodes), s.spec.concurrency(), func(i int) {
		p := s.state.Paths(s.state.Nodes[i].Name)
		addErr(deleteNodePods(p))
		addErr(cleanupNode(context.Background(), s.bin, p))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, h := range s.servers {
		if err := h.srv.Shutdown(ctx); err != nil {
			_ = h.srv.Close()
		}
		// Serve may never have run; close the listener either way.
		_ = h.l.Close()
	}
	if s.cloud != nil {
		errs = append(errs, s.cloud.Close())
	}
	if s.fab != nil {
		errs = append(errs, s.fab.Close())
	}
	for _, f := range []string{StateFile, ProgressFile, TokenFile} {
		if err := os.Remove(filepath.Join(s.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.log.Info("sim stopped")
	return nil
}

// cleanupNode has veni remove what it left in the kernel for the node (the
// fast path's pins outlive every process). A node whose files were never
// written has nothing of veni's.
func cleanupNode(ctx context.Context, bin veniBin, p NodePaths) error {
	if _, err := os.Stat(p.Config); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return bin.cleanup(ctx, p)
}

// progress publishes how far a start-up phase got: progress.json for Up,
// and a log line every tenth of the way.
type progress struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	p      Progress
	logged int
}

func (pr *progress) begin(phase string, total int) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.p, pr.logged = Progress{Phase: phase, Total: total}, 0
	pr.publishLocked()
}

func (pr *progress) step() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.p.Done++
	pr.publishLocked()
}

func (pr *progress) publishLocked() {
	if err := writeJSONFile(pr.path, pr.p, 0o600); err != nil {
		pr.log.Warn("progress", "err", err)
	}
	if pr.p.Done == pr.p.Total || pr.p.Done-pr.logged >= max(1, pr.p.Total/10) {
		pr.logged = pr.p.Done
		pr.log.Info("start-up", "phase", pr.p.Phase, "done", pr.p.Done, "total", pr.p.Total)
	}
}

// The server's own descriptors: per node a namespace handle, a netlink
// socket and the daemon's connections to the API and metadata; with
// headroom for the control endpoint's clients.
const (
	fdsPerNode  = 16
	fdsHeadroom = 1024
)

// raiseNoFile makes the server's open-file limit at least need (Go starts
// it at the hard limit; root may raise that up to fs.nr_open). It is the
// process's own: children get the limit they would have had.
func raiseNoFile(need int64) error {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("read open files limit: %w", err)
	}
	if int64(rl.Cur) >= need {
		return nil
	}
	rl.Cur = uint64(need)
	rl.Max = max(rl.Max, rl.Cur)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("open files limit (RLIMIT_NOFILE) must be at least %d for %d-node sims: %w (raise it: ulimit -n %d, and fs.nr_open)", need, (need-fdsHeadroom)/fdsPerNode, err, need)
	}
	return nil
}

// binary returns bin, or this program when bin is "".
func binary(bin string) (veniBin, error) {
	if bin != "" {
		return veniBin(bin), nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own binary: %w", err)
	}
	return veniBin(self), nil
}
