package commands

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/internal/atomicfile"
	"github.com/veni-cni/veni/netplumb"
	"github.com/veni-cni/veni/node"
)

// The conflist's versions. Runtimes whose libcni predates spec 1.1.0
// (Debian 12's containerd 1.6) ignore cniVersions, use cniVersion, and
// cannot parse a 1.1.0 result; newer ones pick the highest of cniVersions
// they know, and get STATUS and GC.
const conflistVersion = "1.0.0"

var conflistVersions = []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}

type installOptions struct {
	cniBinDir  string
	cniConfDir string
	configDir  string
	eniConf    string
	mtu        int

	// Where the drop-ins that keep NetworkManager and systemd-networkd off
	// veni's links go; "" skips one. Each is written only when its parent
	// (/etc/NetworkManager, /etc/systemd) exists, that is, when the tool
	// is there to read it.
	nmConfDir   string
	networkdDir string
	// unmanageENIs extends the drop-ins to secondary ENIs (eth1 and up)
	// when primaryLink is eth0.
	unmanageENIs bool
	// primaryLink is the node's primary interface; "" means the link of
	// the IPv4 default route.
	primaryLink string
	// sysctlDir gets 90-veni.conf, the neighbour table limits a dense
	// node needs, which install also applies at once; "" does neither.
	sysctlDir string
	// raiseNeighbour applies limits now (netplumb.RaiseNeighbourLimits;
	// tests replace it to leave the machine's kernel alone).
	raiseNeighbour func(netplumb.NeighbourLimits) (netplumb.NeighbourLimits, error)
}

func (o *installOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.cniBinDir, "cni-bin-dir", "/opt/cni/bin", "where the runtime looks for CNI plugins")
	fs.StringVar(&o.cniConfDir, "cni-conf-dir", "/etc/cni/net.d", "where the runtime reads CNI network configurations; empty: leave the conflist to veni daemon --cni-conf-dir, which writes it once ready")
	fs.StringVar(&o.configDir, "config-dir", filepath.Dir(node.DefaultConfigPath), "where veni.json goes")
	fs.StringVar(&o.eniConf, "eni-conf", "", "an eni_conf JSON file (Terway's format) to install as veni.json; empty keeps an existing veni.json")
	fs.IntVar(&o.mtu, "mtu", 0, "pod interface MTU written to the conflist (0: the ENI's)")
	fs.StringVar(&o.nmConfDir, "networkmanager-dir", "/etc/NetworkManager/conf.d", "NetworkManager's conf.d, for veni.conf (written when NetworkManager's directory exists; empty: never)")
	fs.StringVar(&o.networkdDir, "networkd-dir", "/etc/systemd/network", "systemd-networkd's and udev's directory, for 05-veni.network and 05-veni.link (written when /etc/systemd exists; empty: never)")
	fs.BoolVar(&o.unmanageENIs, "unmanage-enis", true, "also keep NetworkManager and systemd-networkd off secondary ENIs (eth1 and up), if the primary interface is eth0")
	fs.StringVar(&o.primaryLink, "primary-interface", "", "the node's primary interface (empty: the link of the IPv4 default route)")
	fs.StringVar(&o.sysctlDir, "sysctl-dir", "/etc/sysctl.d", "where 90-veni.conf goes: IPv4 neighbour table limits for two entries per pod, also applied at once if higher than the kernel's (empty: neither)")
}

func newInstallCommand() *cobra.Command {
	o := &installOptions{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install veni as this node's CNI plugin: the binary, the conflist and the node configuration",
		Long: `install copies this binary to the CNI plugin directory as "veni" (and
links it as "loopback" when the directory has no loopback plugin: containerd
1.6 needs one), installs the node configuration (an eni_conf file,
validated, mode 0600 as it may hold access keys; unknown fields are
reported), tells NetworkManager and systemd-networkd to leave veni's links
alone, and writes 10-veni.conflist last. Every file is replaced atomically,
so a runtime never reads half of one. The DaemonSet's init container runs it.

The drop-ins keep NetworkManager and systemd-networkd off the pods' host
veths (veni*) and, with --unmanage-enis, off the secondary ENIs veni
configures: eth1 and up, written only when the primary interface is eth0
(Alibaba Cloud's images name NICs by probe order, the primary first), so
the primary is never matched. Files that are not veni's are never replaced.`,
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
	if err := installNodeConfig(w, o.eniConf, configPath); err != nil {
		return err
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
	if err := installLoopback(w, o.cniBinDir); err != nil {
		return err
	}
	if err := installNetworkDropIns(w, o); err != nil {
		return err
	}
	if err := installNeighbourLimits(w, o); err != nil {
		return err
	}

	// The conflist goes last: it is what tells the runtime to use veni.
	// Without a directory the daemon writes it once it is ready (the
	// DaemonSet's order, as Terway's).
	if o.cniConfDir == "" {
		fmt.Fprintln(w, "no --cni-conf-dir: the conflist is left to veni daemon --cni-conf-dir")
		return nil
	}
	return writeConflist(w, o.cniConfDir, configPath, o.mtu)
}

// writeConflist writes 10-veni.conflist into dir, naming the node
// configuration at configPath (a path on the host: the runtime's plugin
// reads it there).
func writeConflist(w io.Writer, dir, configPath string, mtu int) error {
	plug := map[string]any{"type": "veni", "config": configPath}
	if mtu > 0 {
		plug["mtu"] = mtu
	}
	conflist, _ := json.MarshalIndent(map[string]any{
		"cniVersion":  conflistVersion,
		"cniVersions": conflistVersions,
		"name":        "veni",
		"plugins":     []any{plug},
	}, "", "  ")
	confPath := filepath.Join(dir, "10-veni.conflist")
	if err := installFile(confPath, append(conflist, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s\n", confPath)
	return nil
}

// installNodeConfig installs eniConf, validated, as veni.json with mode
// 0600 (it may hold an access key). Without eniConf an existing veni.json
// is kept, its mode tightened to 0600 if others could read it.
func installNodeConfig(w io.Writer, eniConf, path string) error {
	if eniConf == "" {
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("no node configuration at %s: pass --eni-conf", path)
		}
		if st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return fmt.Errorf("tighten %s: %w", path, err)
			}
			fmt.Fprintf(w, "note: %s was mode %04o, now 0600: it may hold an access key\n", path, st.Mode().Perm())
		}
		return nil
	}
	raw, err := os.ReadFile(eniConf)
	if err != nil {
		return fmt.Errorf("eni_conf: %w", err)
	}
	_, notes, err := config.Parse(raw)
	if err != nil {
		return fmt.Errorf("eni_conf %s: %w", eniConf, err)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s: %s\n", eniConf, n)
	}
	if err := installFile(path, raw, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s\n", path)
	return nil
}

// installLoopback links "loopback" to "veni" in the CNI bin dir when the
// directory has no loopback plugin; one that is there (Debian's
// containernetworking-plugins, a link left by an earlier install) is kept.
// The link is relative, so it follows veni when veni is replaced.
func installLoopback(w io.Writer, binDir string) error {
	link := filepath.Join(binDir, LoopbackName)
	if _, err := os.Lstat(link); err == nil {
		fmt.Fprintf(w, "kept %s\n", link)
		return nil
	}
	// Symlink fails if the name appeared meanwhile: it never replaces.
	switch err := os.Symlink("veni", link); {
	case errors.Is(err, fs.ErrExist):
		fmt.Fprintf(w, "kept %s\n", link)
	case err != nil:
		return fmt.Errorf("install %s: %w", link, err)
	default:
		fmt.Fprintf(w, "installed %s -> veni\n", link)
	}
	return nil
}

// dropInMarker starts every file veni install writes outside its own
// directories. A file with that name but without the marker is the
// user's, and is left alone.
const dropInMarker = "# Written by veni install."

// dropIn is one file veni install writes into another tool's directory.
type dropIn struct {
	dir, name string
	what      string // who reads it, for messages
	applies   string // when it takes effect
	data      []byte
	// foreign says what is at stake when a file of that name is not
	// veni's and is left alone; empty: "<what> may still manage veni's links".
	foreign string
}

// installNetworkDropIns writes the NetworkManager and systemd-networkd
// drop-ins (see the install command's help for what they match).
func installNetworkDropIns(w io.Writer, o *installOptions) error {
	var files []dropIn
	want := func(dir string) bool {
		if dir == "" {
			return false
		}
		_, err := os.Stat(filepath.Dir(dir))
		return err == nil
	}
	nm, networkd := want(o.nmConfDir), want(o.networkdDir)
	if !nm && !networkd {
		return nil
	}
	enis := false
	if o.unmanageENIs {
		primary := o.primaryLink
		if primary == "" {
			var err error
			if primary, err = defaultRouteLink(); err != nil {
				return err
			}
		}
		enis = primary == "eth0"
		if !enis {
			what := fmt.Sprintf("the primary interface is %s, not eth0", primary)
			if primary == "" {
				what = "no IPv4 default route shows the primary interface"
			}
			fmt.Fprintf(w, "note: %s: NetworkManager and systemd-networkd are told to leave veni's veths alone, not its ENIs (--primary-interface names it)\n", what)
		}
	}
	veths := netplumb.HostVethPrefix + "*"
	if nm {
		specs := []string{"interface-name:" + veths}
		if enis {
			// NetworkManager's globs know * and ? but no ranges:
			// eth1* ... eth9* is every ethN but eth0.
			for d := 1; d <= 9; d++ {
				specs = append(specs, "interface-name:eth"+strconv.Itoa(d)+"*")
			}
		}
		files = append(files, dropIn{o.nmConfDir, "veni.conf", "NetworkManager", "on its restart or nmcli general reload conf", fmt.Appendf(nil, `%s
# NetworkManager leaves veni's links alone: the pods' host veths and, when
# the primary interface is eth0, the secondary ENIs veni configures (eth1
# and up). "+=" adds to the unmanaged devices other files name. Delete the
# first line to keep edits: veni install then leaves this file alone.
[keyfile]
unmanaged-devices+=%s
`, dropInMarker, strings.Join(specs, ";")), ""})
	}
	if networkd {
		names := veths
		if enis {
			names += " eth[1-9]*"
		}
		files = append(files,
			dropIn{o.networkdDir, "05-veni.network", "systemd-networkd", "on its restart or networkctl reload", fmt.Appendf(nil, `%s
# systemd-networkd leaves veni's links alone: the pods' host veths and, when
# the primary interface is eth0, the secondary ENIs veni configures (eth1
# and up). The first matching .network file wins, hence 05. Delete the
# first line to keep edits: veni install then leaves this file alone.
[Match]
Name=%s

[Link]
Unmanaged=yes
`, dropInMarker, names), ""},
			dropIn{o.networkdDir, "05-veni.link", "udev", "to veths created from now on", fmt.Appendf(nil, `%s
# udev leaves the MAC address of the pods' host veths as veni set it: with
# systemd's default MACAddressPolicy=persistent it would replace it after
# veni wrote the pod's neighbour entry for its gateway. Delete the first
# line to keep edits: veni install then leaves this file alone.
[Match]
OriginalName=%s

[Link]
MACAddressPolicy=none
`, dropInMarker, veths), ""},
		)
	}
	for _, f := range files {
		if err := installDropIn(w, f); err != nil {
			return err
		}
	}
	return nil
}

// installNeighbourLimits raises the kernel's IPv4 neighbour table limits
// (one table for every namespace; the defaults, 128/512/1024, overflow at a
// few hundred pods) and keeps them in a sysctl.d drop-in across reboots.
// Limits an operator set higher are kept.
func installNeighbourLimits(w io.Writer, o *installOptions) error {
	if o.sysctlDir == "" {
		return nil
	}
	want := netplumb.SuggestedNeighbourLimits(0)
	raise := o.raiseNeighbour
	if raise == nil {
		raise = netplumb.RaiseNeighbourLimits
	}
	switch got, err := raise(want); {
	case errors.Is(err, netplumb.ErrNoNeighbourLimits):
		fmt.Fprintf(w, "note: %v: run veni install in the node's network namespace (hostNetwork) to apply them now\n", err)
	case err != nil:
		return err
	default:
		fmt.Fprintf(w, "neighbour table limits %d/%d/%d (gc_thresh1/2/3)\n", got.Thresh1, got.Thresh2, got.Thresh3)
	}
	if _, err := os.Stat(filepath.Dir(o.sysctlDir)); err != nil {
		return nil // no /etc here: nothing reads a drop-in
	}
	if err := os.MkdirAll(o.sysctlDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.sysctlDir, err)
	}
	return installDropIn(w, dropIn{dir: o.sysctlDir, name: "90-veni.conf", what: "systemd-sysctl", applies: "at boot",
		data: []byte(netplumb.NeighbourSysctlConf(want)), foreign: "it decides the neighbour table limits after a reboot"})
}

// installDropIn writes f atomically unless the same content is there
// already, or a file of that name without veni's marker (the user's).
func installDropIn(w io.Writer, f dropIn) error {
	path := filepath.Join(f.dir, f.name)
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, f.data):
		fmt.Fprintf(w, "unchanged %s\n", path)
		return nil
	case err == nil && !bytes.HasPrefix(old, []byte(dropInMarker)):
		stake := f.foreign
		if stake == "" {
			stake = f.what + " may still manage veni's links"
		}
		fmt.Fprintf(w, "note: %s is not veni's: left alone, so %s\n", path, stake)
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := installFile(path, f.data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s (%s applies it %s)\n", path, f.what, f.applies)
	return nil
}

// defaultRouteLink returns the interface of the IPv4 default route with
// the lowest metric in this namespace, "" when there is none.
func defaultRouteLink() (string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("find the primary interface: %w", err)
	}
	defer f.Close()
	return parseDefaultRouteLink(f)
}

// parseDefaultRouteLink reads /proc/net/route: a header, then "Iface
// Destination Gateway Flags RefCnt Use Metric Mask ...", addresses and
// masks in hex, the metric in decimal.
func parseDefaultRouteLink(r io.Reader) (string, error) {
	s := bufio.NewScanner(r)
	best, bestMetric := "", -1
	for first := true; s.Scan(); first = false {
		f := strings.Fields(s.Text())
		if first || len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		metric, err := strconv.Atoi(f[6])
		if err != nil {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("read /proc/net/route: %w", err)
	}
	return best, nil
}

// installFile writes data next to path and renames it into place, so a
// runtime executing or reading the old file never sees a partial new one.
func installFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
