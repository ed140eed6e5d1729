package crictest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// staleAge is how old a directory without an owner file must be before a
// sweep takes it as left by a killed run (and not one being set up right
// now by another test binary).
const staleAge = time.Minute

// sweepStale sweeps the directories of containerds whose test binary died
// before its cleanup ran (kill -9, a panic in another goroutine, a
// timeout): their containerd and shims live on.
func sweepStale(tb testing.TB) {
	tb.Helper()
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), DirPrefix+"*"))
	for _, dir := range dirs {
		alive, known := ownerAlive(dir)
		if alive {
			continue
		}
		if fi, err := os.Stat(dir); !known && (err != nil || time.Since(fi.ModTime()) < staleAge) {
			continue
		}
		swept, err := sweepDir(dir)
		if err != nil {
			tb.Logf("sweep stale %s: %v", dir, err)
		}
		tb.Logf("swept %s, left by a test binary that died: %s", dir, strings.Join(swept, "; "))
	}
}

// processID names a process across pid reuse: its pid and start time.
func processID(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command (field 2) may hold spaces; fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.Itoa(pid) + " " + f[19], nil // starttime is field 22
}

// writeOwner records this test binary as the owner of dir.
func writeOwner(dir string) error {
	id, err := processID(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(layout{dir: dir}.ownerFile(), []byte(id), 0o600)
}

// ownerAlive reports whether the test binary that owns dir still runs;
// known is false when dir has no owner file.
func ownerAlive(dir string) (alive, known bool) {
	b, err := os.ReadFile(layout{dir: dir}.ownerFile())
	if err != nil {
		return false, false
	}
	pid, _ := strconv.Atoi(strings.Fields(string(b) + " 0")[0])
	id, err := processID(pid)
	return err == nil && id == strings.TrimSpace(string(b)), true
}

// isDirContainerd reports whether pid is a live containerd run with the
// config of dir.
func isDirContainerd(pid int, dir string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte(layout{dir: dir}.config()))
}

// dirPID is the pid recorded for dir's containerd, or 0.
func dirPID(dir string) int {
	b, err := os.ReadFile(layout{dir: dir}.pidFile())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// sweepDir removes everything a containerd of dir may leave when it or its
// test died or failed: the containerd itself, its runc containers, its
// shims, its sandboxes' cgroups, the mounts under dir (netns, shm, rootfs),
// and dir. It returns what it found.
func sweepDir(dir string) (swept []string, err error) {
	l := layout{dir: dir}
	ids := sandboxIDs(l)
	if pid := dirPID(dir); pid > 0 && isDirContainerd(pid, dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		swept = append(swept, fmt.Sprintf("containerd pid %d", pid))
	}
	// runc's own view first: delete --force kills a container and removes
	// its cgroups and state.
	roots, _ := filepath.Glob(filepath.Join(l.runc(), "*"))
	for _, root := range roots {
		out, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command("runc", "--root", root, "delete", "--force", id).Run()
			swept = append(swept, "runc container "+id)
		}
	}
	for _, pid := range shimsOf(l.grpc()) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		swept = append(swept, fmt.Sprintf("shim pid %d", pid))
	}
	cg, cgErr := removeCgroups(l.cgroupParent())
	swept = append(swept, cg...)
	mounts, mntErr := unmountUnder(dir)
	swept = append(swept, mounts...)
	swept = append(swept, removeHostFiles(l, ids)...)
	created, _ := os.ReadFile(l.hostDirsFile())
	rmErr := os.RemoveAll(dir)
	// Only once dir is gone: another containerd of this package still
	// running keeps the directories in use (and rmdir fails on them).
	for _, d := range strings.Fields(string(created)) {
		_ = unix.Rmdir(d)
	}
	for _, e := range []error{cgErr, mntErr, rmErr} {
		if e != nil && err == nil {
			err = e
		}
	}
	return swept, err
}

// shimsOf returns the pids of the containerd shims serving the containerd
// at address (a shim's command line names it after -address).
func shimsOf(address string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		if i := slices.Index(args, "-address"); i >= 0 && i+1 < len(args) && args[i+1] == address {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupRoots are where parent may exist: under every v1 hierarchy, and at
// the root of a v2 (unified) one.
func cgroupRoots(parent string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", parent)); err == nil && fi.IsDir() {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", "cgroup.controllers")); err == nil {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", parent))
		}
	}
	return dirs
}

// removeCgroups kills what still runs in the cgroup parent and removes it,
// children first.
func removeCgroups(parent string) ([]string, error) {
	var swept []string
	var lastErr error
	for _, root := range cgroupRoots(parent) {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, d := range dirs {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					swept = append(swept, fmt.Sprintf("pid %d in %s", pid, d))
				}
			}
		}
		// Children first; a killed process leaves its cgroup a moment later.
		slices.Reverse(dirs)
		for _, d := range dirs {
			var err error
			for range 50 {
				if err = unix.Rmdir(d); err == nil || err == unix.ENOENT {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				lastErr = fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
	}
	return swept, lastErr
}

// mountsUnder returns the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if p := unescapeMount(f[4]); strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(points)
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) ([]string, error) {
	points := mountsUnder(dir)
	var swept []string
	var lastErr error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			lastErr = fmt.Errorf("unmount %s: %w", p, err)
			continue
		}
		swept = append(swept, "mount "+p)
	}
	return swept, lastErr
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Sweep removes everything a containerd of this package left in dir (a
// Containerd's Dir) when its test binary died: the containerd, its runc
// containers, shims, cgroups and mounts, then dir. It returns what it found.
// StartContainerd sweeps such directories by itself; a test that kills a
// test binary on purpose sweeps with this in its cleanup.
func Sweep(dir string) ([]string, error) {
	if !strings.HasPrefix(filepath.Base(dir), DirPrefix) {
		return nil, fmt.Errorf("sweep %s: not a directory of this package (%s*)", dir, DirPrefix)
	}
	return sweepDir(dir)
}

// Files containerd 1.6 writes outside its own directories, per sandbox:
// the shim's socket, named by a hash of the containerd's address, the
// namespace and the sandbox id (containerd's shim.SocketAddress), and
// libcni's cached results ("<network>-<sandbox id>-<ifname>"). A shim that
// exits removes the first, a DEL the second; a killed run leaves both.
const (
	shimSocketDir = "/run/containerd/s"
	cniResultsDir = "/var/lib/cni/results"
	criNamespace  = "k8s.io"
)

// hostDirCandidates are the directories the files above live in, children
// first.
var hostDirCandidates = []string{shimSocketDir, filepath.Dir(shimSocketDir), cniResultsDir, filepath.Dir(cniResultsDir)}

// newHostDirs returns the candidates that do not exist yet: those the
// containerds about to start will create, to be removed (when empty) once
// the last of them is swept.
func newHostDirs() []string {
	var dirs []string
	for _, d := range hostDirCandidates {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// sandboxIDs returns the ids of the sandboxes a containerd of l ever held:
// the CRI's sandbox directories and the runtime's task directories.
func sandboxIDs(l layout) []string {
	var ids []string
	for _, d := range []string{
		filepath.Join(l.root(), "io.containerd.grpc.v1.cri", "sandboxes"),
		filepath.Join(l.state(), "io.containerd.grpc.v1.cri", "sandboxes"),
		filepath.Join(l.state(), "io.containerd.runtime.v2.task", criNamespace),
	} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// removeHostFiles removes the shim sockets and cached CNI results of the
// sandboxes ids of a containerd of l.
func removeHostFiles(l layout, ids []string) []string {
	var swept []string
	results, _ := os.ReadDir(cniResultsDir)
	for _, id := range ids {
		sum := sha256.Sum256([]byte(filepath.Join(l.grpc(), criNamespace, id)))
		sock := filepath.Join(shimSocketDir, hex.EncodeToString(sum[:]))
		if err := os.Remove(sock); err == nil {
			swept = append(swept, "shim socket "+sock)
		}
		for _, r := range results {
			if strings.Contains(r.Name(), "-"+id+"-") {
				if err := os.Remove(filepath.Join(cniResultsDir, r.Name())); err == nil {
					swept = append(swept, "cni result "+r.Name())
				}
			}
		}
	}
	return swept
}
