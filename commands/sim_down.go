package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/eni/sim/fabric"
	"github.com/veni-cni/veni/store"
)

type simDownOptions struct {
	*simGlobalOptions
	grace time.Duration
}

func (o *simDownOptions) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.grace, "grace", 15*time.Second, "how long the server may take to stop before it is killed")
}

func newSimDownCommand(g *simGlobalOptions) *cobra.Command {
	o := &simDownOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the sim and remove everything it left (also after a crash); succeeds when nothing runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimDown(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runSimDown(ctx context.Context, w io.Writer, o *simDownOptions) error {
	name := o.name
	st, stErr := readSimState(o.dir)
	if stErr == nil && st.Name != "" {
		name = st.Name // the directory knows its sim better than a flag
	}
	stopped := false
	if stErr == nil && simServerAlive(st.PID) {
		if err := stopSimServer(ctx, st.PID, o.grace); err != nil {
			return err
		}
		stopped = true
	}
	lock, err := lockSimName(name)
	if err != nil {
		return fmt.Errorf("%w (its state is not in %s: pass that server's --dir)", err, o.dir)
	}
	defer lock.Close()
	// Whatever a crashed or killed server left: namespaces, links, routes.
	if err := fabric.Cleanup(name); err != nil {
		return err
	}
	_ = os.Remove(simLockPath(name))
	for _, f := range []string{simStateFile, simStateFile + ".tmp", simCredentialsFile, simCredentialsFile + ".tmp", simLogFile} {
		if err := os.Remove(filepath.Join(o.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clean sim dir: %w", err)
		}
	}
	// Pins outlive every process; they go before the stores that name
	// their instances.
	if err := teardownSimPins(o.dir, st.Nodes); err != nil {
		return err
	}
	// The nodes' stores, configs and pod records belong to this sim's
	// instances; a new sim has new instances and must not inherit them.
	for _, d := range []string{simNodesDir, simCNIBinDir} {
		if err := os.RemoveAll(filepath.Join(o.dir, d)); err != nil {
			return fmt.Errorf("clean sim dir: %w", err)
		}
	}
	// Only an emptied directory goes: --dir may point somewhere shared.
	if err := os.Remove(o.dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("remove sim dir: %w", err)
	}
	msg := "no sim %s running; cleaned up\n"
	if stopped {
		msg = "sim %s stopped and cleaned up\n"
	}
	_, err = fmt.Fprintf(w, msg, name)
	return err
}

// stopSimServer sends SIGTERM, waits up to grace for the server to tear
// down its fabric, then kills it (Cleanup then removes what it left).
func stopSimServer(ctx context.Context, pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop sim server %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !simServerAlive(pid) {
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
		if !simServerAlive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("sim server %d survived SIGKILL", pid)
}

// teardownSimPins removes the eBPF pin directory of every node of the sim:
// the nodes in its state and, for a server that died before writing that
// state, the instances its node stores name.
func teardownSimPins(simDir string, nodes []simNode) error {
	ids := make(map[string]bool)
	for _, n := range nodes {
		ids[n.InstanceID] = true
	}
	stores, _ := filepath.Glob(filepath.Join(simDir, simNodesDir, "*", simNodeStore))
	for _, path := range stores {
		_ = store.File{Path: path}.View(func(tx *store.ReadTx) error {
			info, err := tx.Node()
			if err == nil {
				ids[info.InstanceID] = true
			}
			return err
		})
	}
	var errs []error
	for id := range ids {
		if id == "" {
			continue
		}
		dir, err := datapath.PinDir(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, fastpath.Teardown(dir))
	}
	return errors.Join(errs...)
}
