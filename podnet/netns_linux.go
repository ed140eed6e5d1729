package podnet

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/store"
)

// ErrNotNetNS means a path the runtime gave as a network namespace is not
// one (missing, an ordinary file, another kind of namespace).
var ErrNotNetNS = errors.New("not a network namespace")

// IdentifyNetNS returns the identity of the network namespace at path: its
// nsfs device and inode, and the caller's PID namespace (a /proc/<pid>/ns/net
// path resolves differently in another one).
//
// May return an error wrapping ErrNotNetNS.
func IdentifyNetNS(path string) (store.NetNSID, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return store.NetNSID{}, fmt.Errorf("netns %s: %w: %w", path, ErrNotNetNS, err)
	}
	if err != nil {
		return store.NetNSID{}, fmt.Errorf("netns %s: %w", path, err)
	}
	defer f.Close()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return store.NetNSID{}, fmt.Errorf("netns %s: statfs: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return store.NetNSID{}, fmt.Errorf("netns %s: %w (a file on %#x, not an nsfs mount: was the namespace unmounted?)", path, ErrNotNetNS, fs.Type)
	}
	kind, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		return store.NetNSID{}, fmt.Errorf("netns %s: NS_GET_NSTYPE: %w", path, err)
	}
	if kind != unix.CLONE_NEWNET {
		return store.NetNSID{}, fmt.Errorf("netns %s: %w (a namespace of type %#x)", path, ErrNotNetNS, kind)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return store.NetNSID{}, fmt.Errorf("netns %s: stat: %w", path, err)
	}
	return store.NetNSID{Dev: st.Dev, Inode: st.Ino, PIDNS: ownPIDNS()}, nil
}

// ownPIDNS is the inode of this process's PID namespace; 0 when unknown.
func ownPIDNS() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) != nil {
		return 0
	}
	return st.Ino
}

// netnsVerdict is what a liveness check of a bound allocation's netns found.
type netnsVerdict int

const (
	netnsAlive   netnsVerdict = iota
	netnsGone                 // the path no longer names the pod's namespace
	netnsUnknown              // the path cannot be judged from here (another PID namespace)
)

func (v netnsVerdict) String() string {
	return [...]string{"alive", "gone", "unknown"}[v]
}

// judgeNetNS decides whether a bound allocation's network namespace still
// exists. The path alone is not enough: containerd can leave an empty file
// where it unmounted a sandbox's netns, a name can be reused for a new
// namespace, and /proc/<pid>/ns/net names another process's namespace in
// another PID namespace.
func judgeNetNS(a store.Allocation) (netnsVerdict, string) {
	if a.NetNS == "" {
		return netnsUnknown, "no netns recorded"
	}
	otherPIDNS := a.NetNSID.PIDNS != 0 && a.NetNSID.PIDNS != ownPIDNS()
	if otherPIDNS && strings.HasPrefix(a.NetNS, "/proc/") {
		return netnsUnknown, fmt.Sprintf("%s was recorded in another PID namespace", a.NetNS)
	}
	id, err := IdentifyNetNS(a.NetNS)
	if err != nil {
		if errors.Is(err, ErrNotNetNS) {
			return netnsGone, err.Error()
		}
		return netnsUnknown, err.Error() // EACCES and the like: never a reason to release
	}
	if a.NetNSID.Inode != 0 && (id.Inode != a.NetNSID.Inode || id.Dev != a.NetNSID.Dev) {
		return netnsGone, fmt.Sprintf("%s now names another namespace (inode %d, was %d)", a.NetNS, id.Inode, a.NetNSID.Inode)
	}
	return netnsAlive, ""
}
