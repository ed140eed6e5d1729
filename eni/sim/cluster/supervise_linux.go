package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Process is one program a Supervisor keeps running.
type Process struct {
	Name  string   // for logs and status, e.g. "node-1/daemon"
	Argv  []string // Argv[0] is a path or a name looked up in PATH
	NetNS string   // path of the network namespace it runs in; "" is the caller's
	Log   string   // file its stdout and stderr append to (0600); "" discards them
}

// Backoff is how long a Supervisor waits before restarting a process that
// exited: Initial, doubling up to Max while runs keep failing, and Initial
// again after a run that lasted ResetAfter. A process killed by a signal
// (kill -9 in a test, the OOM killer) did not fail by itself and is
// restarted after Initial: back-off is for a program that keeps exiting on
// its own (a bad config, a missing file), where trying again at once only
// fills the log.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// DefaultBackoff restarts after a second, as systemd's RestartSec=1 does,
// and backs off to 30s for a process that keeps exiting at once.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second, ResetAfter: 10 * time.Second}

// ProcessStatus is a supervised process as "veni sim status" shows it.
type ProcessStatus struct {
	Name      string    `json:"name"`
	PID       int       `json:"pid"` // of the current run; 0 while waiting to restart
	Alive     bool      `json:"alive"`
	Restarts  int       `json:"restarts"`
	Since     time.Time `json:"since"`              // start of the current run, or exit of the last
	LastExit  string    `json:"lastExit,omitempty"` // how the last run ended ("exit status 1", "signal: killed")
	NextStart time.Time `json:"nextStart,omitzero"` // while waiting to restart
}

// Supervisor keeps one process running the way systemd's Restart=always
// does on a real node: a process that dies (a crash, a kill -9 in a test)
// is started again after a back-off. It is safe for concurrent use.
type Supervisor struct {
	p   Process
	b   Backoff
	log *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd // the current run; nil when its start failed
	st       ProcessStatus
	stopping bool
	stopc    chan struct{} // closed by Stop
	done     chan struct{} // closed when the loop returns
}

// Supervise starts p and keeps it running until Stop. Only the first
// start's failure is returned; later ones are retried with the back-off and
// shown in Status.
func Supervise(p Process, b Backoff, log *slog.Logger) (*Supervisor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if b.Initial <= 0 || b.Max < b.Initial {
		return nil, fmt.Errorf("supervise %s: back-off %+v: need 0 < initial <= max", p.Name, b)
	}
	cmd, err := startProcess(p)
	if err != nil {
		return nil, err
	}
	s := &Supervisor{p: p, b: b, log: log, cmd: cmd, stopc: make(chan struct{}), done: make(chan struct{})}
	s.st = ProcessStatus{Name: p.Name, PID: cmd.Process.Pid, Alive: true, Since: time.Now()}
	go s.loop(cmd)
	return s, nil
}

func (s *Supervisor) loop(cmd *exec.Cmd) {
	defer close(s.done)
	wait := s.b.Initial
	started := time.Now()
	for {
		exit := "not started"
		if cmd != nil {
			err := cmd.Wait()
			exit = describeExit(err)
			if time.Since(started) >= s.b.ResetAfter || killed(cmd) {
				wait = s.b.Initial
			}
		}
		s.mu.Lock()
		if s.stopping {
			s.st.PID, s.st.Alive, s.st.LastExit = 0, false, exit
			s.mu.Unlock()
			return
		}
		now := time.Now()
		if cmd != nil {
			s.st.LastExit = exit
		}
		s.st.PID, s.st.Alive, s.st.Since, s.st.NextStart = 0, false, now, now.Add(wait)
		last := s.st.LastExit
		s.mu.Unlock()
		s.log.Warn("process exited; restarting", "process", s.p.Name, "exit", last, "in", wait)

		select {
		case <-s.stopc:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, s.b.Max)

		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return
		}
		next, err := startProcess(s.p)
		s.st.Restarts++
		s.st.NextStart = time.Time{}
		if err != nil {
			cmd = nil
			s.st.LastExit = "restart failed: " + err.Error()
			s.mu.Unlock()
			s.log.Error("restart", "process", s.p.Name, "err", err)
			continue
		}
		cmd, s.cmd, started = next, next, time.Now()
		s.st.PID, s.st.Alive, s.st.Since = next.Process.Pid, true, started
		restarts := s.st.Restarts
		s.mu.Unlock()
		s.log.Info("process restarted", "process", s.p.Name, "pid", next.Process.Pid, "restarts", restarts)
	}
}

// Status returns the process's current state.
func (s *Supervisor) Status() ProcessStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Stop ends supervision: it sends SIGTERM and waits up to grace, then kills
// the process's group. May be called more than once.
func (s *Supervisor) Stop(grace time.Duration) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.stopping = true
	close(s.stopc)
	cmd, alive := s.cmd, s.st.Alive
	s.mu.Unlock()
	if cmd == nil || !alive {
		<-s.done
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM; killed", s.p.Name, cmd.Process.Pid, grace)
	}
}

// startProcess starts p, inside its network namespace when it has one: the
// child is forked from a thread switched into it.
func startProcess(p Process) (*exec.Cmd, error) {
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	if p.Log != "" {
		logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", p.Name, err)
		}
		defer logf.Close() // the child holds its own copy
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	// Its own process group, so Stop can kill whatever it started; and it
	// dies with the server, whose teardown would otherwise race it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	start := cmd.Start
	if p.NetNS != "" {
		start = func() error {
			return ns.WithNetNSPath(p.NetNS, func(ns.NetNS) error { return cmd.Start() })
		}
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	return cmd, nil
}

// killed reports whether a waited-for command was ended by a signal.
func killed(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// describeExit says how a run ended, from cmd.Wait's error.
func describeExit(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	default:
		return err.Error()
	}
}
