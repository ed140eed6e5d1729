package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/node"
)

type installOptions struct {
	cniBinDir  string
	cniConfDir string
	configDir  string
	eniConf    string
	mtu        int
}

func (o *installOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.cniBinDir, "cni-bin-dir", "/opt/cni/bin", "where the runtime looks for CNI plugins")
	fs.StringVar(&o.cniConfDir, "cni-conf-dir", "/etc/cni/net.d", "where the runtime reads CNI network configurations")
	fs.StringVar(&o.configDir, "config-dir", filepath.Dir(node.DefaultConfigPath), "where veni.json goes")
	fs.StringVar(&o.eniConf, "eni-conf", "", "an eni_conf JSON file (Terway's format) to install as veni.json; empty keeps an existing veni.json")
	fs.IntVar(&o.mtu, "mtu", 0, "pod interface MTU written to the conflist (0: the ENI's)")
}

func newInstallCommand() *cobra.Command {
	o := &installOptions{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install veni as this node's CNI plugin: the binary, the conflist and the node configuration",
		Long: `install copies this binary to the CNI plugin directory as "veni", installs
the node configuration (an eni_conf file, validated; unknown fields are
reported), and writes 10-veni.conflist. Every file is replaced atomically,
so a runtime never reads half of one. The DaemonSet's init container runs it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInstall(cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runInstall(w io.Writer, o *installOptions) error {
	if o.mtu < 0 || (o.mtu > 0 && o.mtu < 576) {
		return fmt.Errorf("--mtu %d: use 0 (the ENI's) or at least 576", o.mtu)
	}
	configPath := filepath.Join(o.configDir, filepath.Base(node.DefaultConfigPath))
	if o.eniConf != "" {
		raw, err := os.ReadFile(o.eniConf)
		if err != nil {
			return fmt.Errorf("eni_conf: %w", err)
		}
		_, notes, err := config.Parse(raw)
		if err != nil {
			return fmt.Errorf("eni_conf %s: %w", o.eniConf, err)
		}
		for _, n := range notes {
			fmt.Fprintf(w, "note: %s: %s\n", o.eniConf, n)
		}
		if err := installFile(configPath, raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "installed %s\n", configPath)
	} else if _, err := os.Stat(configPath); err != nil {
		return fmt.Errorf("no node configuration at %s: pass --eni-conf", configPath)
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("read own binary: %w", err)
	}
	plugin := filepath.Join(o.cniBinDir, "veni")
	if err := installFile(plugin, bin, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s\n", plugin)

	plug := map[string]any{"type": "veni", "config": configPath}
	if o.mtu > 0 {
		plug["mtu"] = o.mtu
	}
	conflist, _ := json.MarshalIndent(map[string]any{
		"cniVersion":  "1.1.0",
		"cniVersions": []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"},
		"name":        "veni",
		"plugins":     []any{plug},
	}, "", "  ")
	confPath := filepath.Join(o.cniConfDir, "10-veni.conflist")
	if err := installFile(confPath, append(conflist, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s\n", confPath)
	return nil
}

// installFile writes data next to path and renames it into place, so a
// runtime executing or reading the old file never sees a partial new one.
func installFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}
