package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/veni-cni/veni/eni/sim/fabric"
)

// DownOptions describe the sim Down stops.
type DownOptions struct {
	Dir    string
	Name   string        // used when the directory has no state naming its sim
	Grace  time.Duration // for the server to stop before it is killed
	Binary string        // veni binary that cleans up the nodes ("veni cleanup"); "" is this program
}

// Down stops the sim in dir and removes everything it left: after a clean
// stop, after a crash, or when nothing runs (then it only cleans up). It
// works whatever the version of the server's state.
func Down(ctx context.Context, w io.Writer, o DownOptions) error {
	name := o.Name
	st, stErr := ReadState(o.Dir)
	if stErr == nil && st.Name != "" {
		name = st.Name // the directory knows its sim better than a flag
	}
	stopped := false
	if stErr == nil && ServerAlive(st.PID) {
		if err := stopServer(ctx, st.PID, o.Grace); err != nil {
			return err
		}
		stopped = true
	}
	lock, err := lockName(name)
	if err != nil {
		return fmt.Errorf("%w (its state is not in %s: pass that server's --dir)", err, o.Dir)
	}
	defer lock.Close()
	// Whatever a crashed or killed server left: namespaces, links, routes.
	if err := fabric.Cleanup(name); err != nil {
		return err
	}
	// Pins outlive every process; veni removes them before the node
	// directories that name their instances go.
	bin, err := binary(o.Binary)
	if err != nil {
		return err
	}
	if err := cleanupNodes(ctx, bin, o.Dir); err != nil {
		return err
	}
	// A crashed server could not lower the kernel limits it raised.
	if err := kernelSysctls(slog.New(slog.DiscardHandler)).release(name); err != nil {
		return err
	}
	_ = os.Remove(LockPath(name))
	for _, f := range []string{StateFile, SpecFile, ProgressFile, TokenFile, CredentialsFile, LogFile} {
		for _, path := range []string{filepath.Join(o.Dir, f), filepath.Join(o.Dir, f) + ".tmp"} {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("clean sim dir: %w", err)
			}
		}
	}
	// The nodes' stores, configs and pod records belong to this sim's
	// instances; a new sim has new instances and must not inherit them.
	// Its policies and pod manifests go with them.
	for _, d := range []string{NodesDir, CNIBinDir, ManifestsDir} {
		if err := os.RemoveAll(filepath.Join(o.Dir, d)); err != nil {
			return fmt.Errorf("clean sim dir: %w", err)
		}
	}
	// Only an emptied directory goes: --dir may point somewhere shared.
	if err := os.Remove(o.Dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("remove sim dir: %w", err)
	}
	msg := "no sim %s running; cleaned up\n"
	if stopped {
		msg = "sim %s stopped and cleaned up\n"
	}
	_, err = fmt.Fprintf(w, msg, name)
	return err
}

// cleanupNodes runs "veni cleanup" for every node directory in dir: the
// nodes in the state and, for a server that died before writing it, every
// node whose files it wrote.
func cleanupNodes(ctx context.Context, bin veniBin, dir string) error {
	nodeDirs, _ := filepath.Glob(filepath.Join(dir, NodesDir, "*"))
	var (
		mu   sync.Mutex
		errs []error
	)
	forAll(len(nodeDirs), DefaultStartConcurrency, func(i int) {
		err := cleanupNode(ctx, bin, Paths(dir, filepath.Base(nodeDirs[i])))
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	})
	return errors.Join(errs...)
}

// stopServer sends SIGTERM, waits up to grace for the server to tear down
// its fabric, then kills it (fabric.Cleanup then removes what it left).
func stopServer(ctx context.Context, pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop sim server %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !ServerAlive(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill sim server %d: %w", pid, err)
	}
	for range 50 {
		if !ServerAlive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("sim server %d survived SIGKILL", pid)
}
