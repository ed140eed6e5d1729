package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/fabric"
)

type simServeOptions struct {
	*simGlobalOptions
	topo simTopologyOptions
}

func (o *simServeOptions) AddFlags(fs *pflag.FlagSet) { o.topo.AddFlags(fs) }

// newSimServeCommand is the long-running server behind "veni sim up";
// users start it through "up", which detaches it and waits for it.
func newSimServeCommand(g *simGlobalOptions) *cobra.Command {
	o := &simServeOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run the simulated VPC in the foreground (started by veni sim up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.topo.config()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runSimServe(ctx, o, cfg)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// simServer is one running sim: fabric, cloud and the three HTTP faces.
type simServer struct {
	log     *slog.Logger
	dir     string
	fab     *fabric.Fabric
	cloud   *sim.Cloud
	servers []simHTTP
	state   simState
	daemons []*simDaemon
}

// simHTTP is one HTTP face with the socket it serves on, which may live in
// another namespace than the server's goroutines.
type simHTTP struct {
	srv *http.Server
	l   net.Listener
}

func runSimServe(ctx context.Context, o *simServeOptions, cfg sim.Config) (err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("sim", o.name)
	slog.SetDefault(log)
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("sim dir: %w", err)
	}
	lock, err := lockSimName(o.name)
	if err != nil {
		return err
	}
	defer lock.Close() // released only after teardown, deferred below
	s := &simServer{log: log, dir: o.dir}
	defer func() {
		if terr := s.teardown(); terr != nil {
			log.Error("teardown", "err", terr)
			err = errors.Join(err, terr)
		}
	}()
	if err := s.start(ctx, o, cfg); err != nil {
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

func (s *simServer) start(ctx context.Context, o *simServeOptions, cfg sim.Config) error {
	akID, secret := "LTAI"+sim.RandomID(20), sim.RandomID(30)
	credPath := filepath.Join(o.dir, simCredentialsFile)
	cred, _ := json.MarshalIndent(map[string]string{"AccessKeyId": akID, "AccessKeySecret": secret}, "", "  ")
	if err := writeFileAtomic(credPath, append(cred, '\n'), 0o600); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	cfg.Credentials = map[string]string{akID: secret}

	cidrs := make([]netip.Prefix, 0, len(cfg.VSwitches))
	for _, v := range cfg.VSwitches {
		cidrs = append(cidrs, v.CIDR)
	}
	fab, err := fabric.New(fabric.Options{Name: o.name, VPCCIDR: cfg.VPCCIDR, VSwitches: cidrs})
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

	s.state = simState{
		PID: os.Getpid(), Name: o.name, Dir: o.dir, Started: time.Now().UTC(),
		Region: cfg.RegionID, VPCID: cfg.VPCID, VPCCIDR: cfg.VPCCIDR, VPCNetNS: fab.VPCNetNS(),
		VSwitches:        cfg.VSwitches,
		APIEndpoint:      "http://" + fabric.APIAddr.String(),
		MetadataEndpoint: "http://" + fabric.MetadataAddr.String(),
		Credentials:      credPath,
	}
	for i := 1; i <= o.topo.nodes; i++ {
		n, err := s.addNode(fmt.Sprintf("node-%d", i), o.topo.instanceType, cfg.VSwitches[(i-1)%len(cfg.VSwitches)].ID)
		if err != nil {
			return err
		}
		s.state.Nodes = append(s.state.Nodes, n)
		s.log.Info("node up", "node", n.Name, "instance", n.InstanceID, "ip", n.PrimaryIP, "netns", n.NetNS)
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
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}
	s.serve(ctl, s.controlHandler())
	s.state.ControlEndpoint = "http://" + ctl.Addr().String()

	if err := s.prepareNodes(o.topo.pool); err != nil {
		return err
	}
	st, _ := json.MarshalIndent(s.state, "", "  ")
	if err := writeFileAtomic(filepath.Join(o.dir, simStateFile), append(st, '\n'), 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// prepareNodes gives every node what "veni install" gives a real one and,
// unless disabled, starts its daemon. The daemons start once the API and
// metadata listen, so their first pass finds the cloud.
func (s *simServer) prepareNodes(pool simPoolOptions) error {
	if _, err := linkSimCNIBin(s.dir); err != nil {
		return err
	}
	for _, n := range s.state.Nodes {
		p, err := writeSimNodeFiles(s.state, n, pool)
		if err != nil {
			return err
		}
		if !pool.daemons {
			continue
		}
		d, err := superviseSimDaemon(n, p, pool.syncInterval, s.log)
		if err != nil {
			return err
		}
		s.daemons = append(s.daemons, d)
		s.log.Info("daemon started", "node", n.Name, "pid", d.pid(), "log", p.Log)
	}
	return nil
}

// addNode creates the node's namespace first: the cloud wires the primary
// ENI into it while AddInstance runs.
func (s *simServer) addNode(name, instanceType, vswID string) (simNode, error) {
	id := "i-" + sim.RandomID(20)
	fn, err := s.fab.AddNode(name, id)
	if err != nil {
		return simNode{}, err
	}
	inst, err := s.cloud.AddInstance(sim.InstanceSpec{ID: id, Hostname: name, Type: instanceType, VSwitchID: vswID})
	if err != nil {
		return simNode{}, fmt.Errorf("add %s: %w", name, err)
	}
	return simNode{
		Name: name, InstanceID: inst.ID, InstanceType: inst.Type, NetNS: fn.NetNS, NetNSPath: fn.NetNSPath,
		PrimaryENIID: inst.PrimaryENIID, PrimaryIP: inst.PrimaryIP, MAC: inst.PrimaryMAC.String(), VSwitchID: inst.VSwitchID,
	}, nil
}

func (s *simServer) serve(l net.Listener, h http.Handler) {
	s.servers = append(s.servers, simHTTP{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, l: l})
}

func (s *simServer) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(simControlState{Cloud: s.cloud.Snapshot(), Nodes: s.state.Nodes})
	})
	mux.HandleFunc("POST /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		var req simFaultRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "decode fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		if req.ThrottleRate < 0 || req.ThrottleRate > 1 || req.ErrorRate < 0 || req.ErrorRate > 1 || req.Latency < 0 {
			http.Error(w, "rates must be within [0,1] and latency not negative", http.StatusBadRequest)
			return
		}
		switch {
		case req.Clear && req.Action == "":
			s.cloud.ClearFaults()
		case req.Clear:
			s.cloud.SetFault(req.Action, sim.Fault{})
		default:
			s.cloud.SetFault(req.Action, sim.Fault{Latency: req.Latency, ThrottleRate: req.ThrottleRate, ErrorRate: req.ErrorRate, ErrorCode: req.ErrorCode})
		}
		s.log.Info("fault", "action", req.Action, "clear", req.Clear, "latency", req.Latency, "throttle", req.ThrottleRate, "errorRate", req.ErrorRate)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(req)
	})
	return mux
}

// teardown stops in dependency order: an open socket keeps the VPC
// namespace alive, so the servers close before the fabric.
func (s *simServer) teardown() error {
	var errs []error
	for _, d := range s.daemons {
		errs = append(errs, d.stop())
	}
	for _, n := range s.state.Nodes {
		errs = append(errs, deleteSimPods(s.state, n))
	}
	errs = append(errs, teardownSimPins(s.dir, s.state.Nodes))
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
	if err := os.Remove(filepath.Join(s.dir, simStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.log.Info("sim stopped")
	return nil
}
