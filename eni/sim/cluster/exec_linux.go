package cluster

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Exec replaces this process with argv running in the network namespace of
// a node of the live sim in dir (by name, instance id or namespace), with
// /sys showing the node's interfaces, like "ip netns exec". It returns only
// on failure. May return an error wrapping ErrNotRunning or ErrNoNode.
func Exec(dir, node string, argv []string) error {
	st, err := Running(dir)
	if err != nil {
		return err
	}
	n, err := st.FindNode(node)
	if err != nil {
		return err
	}
	return execInNetNS(n.NetNSPath, argv)
}

// execInNetNS replaces the process with argv running in the network
// namespace at nsPath. Namespaces belong to threads, and execve keeps the
// calling thread's, so the thread is locked, switched and never unlocked:
// on success it becomes the new program, on failure the process exits.
func execInNetNS(nsPath string, argv []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], err)
	}
	runtime.LockOSThread()
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter netns %s: %w", nsPath, err)
	}
	_ = unix.Close(fd)
	if err := remountSys(); err != nil {
		// Netlink tools (ip, veni) do not need it; only /sys/class/net
		// readers would see the host's interfaces.
		slog.Debug("sim exec: /sys still shows the host", "err", err)
	}
	if err := unix.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// remountSys does what "ip netns exec" does so that /sys/class/net lists
// the node's links: a private mount namespace for this thread (slave, so
// nothing propagates back to the host) with a sysfs mounted from inside the
// network namespace.
//
// Unlike "ip netns exec" it keeps the host's bpffs at /sys/fs/bpf: every
// simulated node shares the one kernel and pins its eBPF objects there, and
// a veni run inside "sim exec" must see the same pins as its daemon.
func remountSys() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / slave: %w", err)
	}
	// A detached copy of the bpffs mount survives the sysfs swap below.
	bpffs := -1
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/sys/fs/bpf", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("clone bpffs mount: %w", err)
		}
		bpffs = fd
		defer unix.Close(bpffs)
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount /sys: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("mount sysfs: %w", err)
	}
	if bpffs >= 0 {
		if err := unix.MoveMount(bpffs, "", unix.AT_FDCWD, "/sys/fs/bpf", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("keep bpffs at /sys/fs/bpf: %w", err)
		}
	}
	return nil
}
