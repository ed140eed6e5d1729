package crictest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// layout is where one containerd keeps everything, all under dir.
type layout struct {
	dir string
}

func (l layout) config() string       { return filepath.Join(l.dir, "config.toml") }
func (l layout) root() string         { return filepath.Join(l.dir, "root") }
func (l layout) state() string        { return filepath.Join(l.dir, "state") }
func (l layout) opt() string          { return filepath.Join(l.dir, "opt") }
func (l layout) runc() string         { return filepath.Join(l.dir, "runc") }
func (l layout) grpc() string         { return filepath.Join(l.dir, "c.sock") }
func (l layout) ttrpc() string        { return filepath.Join(l.dir, "c.sock.ttrpc") }
func (l layout) log() string          { return filepath.Join(l.dir, "containerd.log") }
func (l layout) pidFile() string      { return filepath.Join(l.dir, "containerd.pid") }
func (l layout) hostDirsFile() string { return filepath.Join(l.dir, "hostdirs") } // see newHostDirs
func (l layout) ownerFile() string    { return filepath.Join(l.dir, "owner") }    // the test binary's pid and start time

// cgroupParent is the cgroup (under every v1 hierarchy's root) that holds
// this containerd's sandboxes, named after the directory so that a sweep
// finds it from the directory alone.
func (l layout) cgroupParent() string { return "/" + filepath.Base(l.dir) }

// configTOML is containerd's config (version 2) for one test node: every
// path of its own, the CRI plugin on the node's CNI files, runc through
// the v2 shim with cgroupfs.
//
//   - restrict_oom_score_adj: without CAP_SYS_RESOURCE (a VM's container)
//     runc fails with "can't get final child's PID from pipe" otherwise.
//   - netns_mounts_under_state_dir: sandbox namespaces are mounted under
//     the state directory, so a sweep of the directory finds them.
//   - max_conf_num = 1: the first conflist of conf_dir, as kubelet's
//     runtimes are set up on a node.
//   - the snapshotters that cannot work here are disabled, to keep the log
//     about what matters.
func configTOML(l layout, cniBinDir, cniConfDir string) string {
	q := strconv.Quote
	lines := []string{
		`version = 2`,
		`root = ` + q(l.root()),
		`state = ` + q(l.state()),
		`disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]`,
		``,
		`[grpc]`,
		`  address = ` + q(l.grpc()),
		`[ttrpc]`,
		`  address = ` + q(l.ttrpc()),
		``,
		`[plugins."io.containerd.internal.v1.opt"]`,
		`  path = ` + q(l.opt()),
		``,
		`[plugins."io.containerd.grpc.v1.cri"]`,
		`  sandbox_image = ` + q(PauseImage),
		`  restrict_oom_score_adj = true`,
		`  netns_mounts_under_state_dir = true`,
		`  disable_apparmor = true`,
		`  stream_server_address = "127.0.0.1"`,
		`  stream_server_port = "0"`,
		`  [plugins."io.containerd.grpc.v1.cri".cni]`,
		`    bin_dir = ` + q(cniBinDir),
		`    conf_dir = ` + q(cniConfDir),
		`    max_conf_num = 1`,
		`  [plugins."io.containerd.grpc.v1.cri".containerd]`,
		`    snapshotter = "overlayfs"`,
		`    default_runtime_name = "runc"`,
		`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
		`      runtime_type = "io.containerd.runc.v2"`,
		`      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
		`        SystemdCgroup = false`,
		`        Root = ` + q(l.runc()),
		``,
	}
	return strings.Join(lines, "\n")
}

// checkPath guards the paths containerd is given: absolute, and nothing a
// TOML string or a mount table would mangle.
func checkPath(name, p string) error {
	if p == "" || !filepath.IsAbs(p) || strings.ContainsAny(p, "\n\x00") {
		return fmt.Errorf("%s %q: need an absolute path", name, p)
	}
	return nil
}
