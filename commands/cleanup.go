package commands

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/podnet"
	"github.com/veni-cni/veni/store"
)

type cleanupOptions struct {
	config string
}

func (o *cleanupOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.config, "config", envOr("VENI_CONFIG", node.DefaultConfigPath), "node configuration file; names the store [$VENI_CONFIG]")
}

func newCleanupCommand() *cobra.Command {
	o := &cleanupOptions{}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what veni left in this node's kernel that outlives its processes (eBPF pins, pod namespace pins)",
		Long: `Removes the node's eBPF fast path pins under /sys/fs/bpf/veni and its
trunk VLAN tagger's under /sys/fs/bpf/veni-vlan: their programs detach and
their maps go. Removes the pins that keep exclusive ENI pods' network
namespaces alive until veni gave their ENI back. For taking veni off a node, and what
"veni sim down" runs for every simulated node. Stop the daemon first: one
running the ebpf datapath pins them again. Pods keep their addresses,
links and routes. A node that never pinned anything is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCleanup(cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runCleanup(w io.Writer, o *cleanupOptions) error {
	env, err := node.Load(o.config)
	if err != nil {
		return err
	}
	// Opening a missing store would create one: no store, no pins.
	if _, err := os.Stat(env.Store.Path); errors.Is(err, os.ErrNotExist) {
		_, err = fmt.Fprintf(w, "nothing to clean up: no store at %s\n", env.Store.Path)
		return err
	}
	if n, err := podnet.UnpinAll(env.Store); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(w, "removed the namespace pins of %d exclusive ENI pods\n", n)
	}
	var info store.NodeInfo
	err = env.Store.View(func(tx *store.ReadTx) error {
		var err error
		info, err = tx.Node()
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		_, err = fmt.Fprintf(w, "nothing to clean up: %s names no instance yet\n", env.Store.Path)
		return err
	}
	if err != nil {
		return fmt.Errorf("read node facts: %w", err)
	}
	// The trunk tagger's pins live apart from the fast path's.
	if had, err := datapath.TeardownVLAN(info.InstanceID); err != nil {
		return err
	} else if had {
		fmt.Fprintf(w, "removed the trunk VLAN tagger pins of %s\n", info.InstanceID)
	}
	pinDir, err := datapath.PinDir(info.InstanceID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		_, err = fmt.Fprintf(w, "nothing to clean up: %s has no fast path pins (%s)\n", info.InstanceID, pinDir)
		return err
	}
	if err := fastpath.Teardown(pinDir); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "removed the fast path pins of %s (%s)\n", info.InstanceID, pinDir)
	return err
}
