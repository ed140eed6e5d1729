package fastpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// bpffsMount is the only place Open mounts bpffs itself: mounting over any
// other directory could hide what a misconfigured PinDir points at.
const bpffsMount = "/sys/fs/bpf"

const linksDir = "links"

func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}

// nearestExisting returns path or its closest ancestor that exists.
func nearestExisting(path string) (string, error) {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == "/" {
			return "", err
		}
	}
}

// ensureBPFFS makes dir exist on bpffs, mounting bpffs on /sys/fs/bpf when
// dir lies below it and nothing is mounted there yet.
//
// Equivalent to: mount -t bpf bpf /sys/fs/bpf && mkdir -p $dir
func ensureBPFFS(dir string) error {
	existing, err := nearestExisting(dir)
	if err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	ok, err := isBPFFS(existing)
	if err != nil {
		return fmt.Errorf("statfs %s: %w", existing, err)
	}
	if !ok {
		under := dir == bpffsMount || strings.HasPrefix(dir, bpffsMount+"/")
		if !under {
			return fmt.Errorf("%s: %w (mount -t bpf bpf <dir>, or use a dir under %s)", dir, ErrNotBPFFS, bpffsMount)
		}
		if err := mountBPFFS(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	return nil
}

// mountBPFFS mounts bpffs on /sys/fs/bpf unless another process just did.
func mountBPFFS() error {
	unlock, err := lockPath(bpffsMount)
	if err != nil {
		return err
	}
	defer unlock()
	// Re-check by path under the lock: a mount that won the race is what
	// the path resolves to now.
	if ok, err := isBPFFS(bpffsMount); err != nil {
		return fmt.Errorf("statfs %s: %w", bpffsMount, err)
	} else if ok {
		return nil
	}
	if err := unix.Mount("bpf", bpffsMount, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", bpffsMount, err)
	}
	return nil
}

// lockPath takes an exclusive flock on path (a directory) and returns its
// release. Parallel CNI invocations on a node serialise on their pin dir so
// that two of them never race to create and pin the same map.
func lockPath(path string) (func(), error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s for locking: %w", path, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { unix.Close(fd) }, nil
}

// pinLink pins l at path, replacing (and so detaching) a link pinned there
// before. The new link is attached first, so traffic never sees a gap.
func pinLink(l link.Link, path string) error {
	if err := unpinLink(path); err != nil {
		return err
	}
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pin link %s: %w", path, err)
	}
	return nil
}

// unpinLink removes the link pinned at path, which detaches its program
// once no process holds it. A missing pin is not an error.
func unpinLink(path string) error {
	old, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned link %s: %w", path, err)
	}
	defer old.Close()
	if err := old.Unpin(); err != nil {
		return fmt.Errorf("unpin link %s: %w", path, err)
	}
	return nil
}

// Teardown removes every pinned object of a node: its maps and links, and
// so detaches all its programs. It is for daemon shutdown and "veni sim
// down". A missing pinDir is not an error; a pinDir that is not on bpffs is
// refused (ErrNotBPFFS) rather than deleted.
func Teardown(pinDir string) error {
	if pinDir == "" {
		return fmt.Errorf("%w: no pin dir", ErrInvalidOptions)
	}
	if _, err := os.Stat(pinDir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ok, err := isBPFFS(pinDir)
	if err != nil {
		return fmt.Errorf("statfs %s: %w", pinDir, err)
	}
	if !ok {
		return fmt.Errorf("teardown %s: %w", pinDir, ErrNotBPFFS)
	}
	// The bpffs root holds other users' pins (and is a mount point).
	if ok, err := isBPFFS(filepath.Dir(filepath.Clean(pinDir))); err != nil || !ok {
		return fmt.Errorf("teardown %s: %w (refusing the root of a bpffs)", pinDir, ErrInvalidOptions)
	}
	// Links first, through a link fd: the kernel releases a link whose
	// last reference was a pin in a deferred work item, so a plain unlink
	// could return while the program is still attached. Closing our fd
	// after Unpin detaches synchronously.
	entries, err := os.ReadDir(filepath.Join(pinDir, linksDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("teardown %s: %w", pinDir, err)
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, unpinLink(filepath.Join(pinDir, linksDir, e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown %s: %w", pinDir, err)
	}
	// Pods hooked through tc hold the programs with filters, not pins:
	// remove veni's filters from every recorded pod's veth (in the caller's
	// namespace; a veth that is gone took its filters along).
	if m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "veni_endpoints"), nil); err == nil {
		var (
			key [4]byte
			val fastpathEndpoint
		)
		iter := m.Iterate()
		for iter.Next(&key, &val) {
			errs = append(errs, detachPodTC(int(val.HostIfindex), val.HostMac[:]))
		}
		m.Close()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("teardown %s: %w", pinDir, err)
		}
	}
	// Maps die with the last program using them.
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("teardown %s: %w", pinDir, err)
	}
	return nil
}
