package fabric

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// CreateNetNS creates the namespace nsName, mounted under /run/netns like
// "ip netns add"; it is also how the sim's pods get theirs. May return an
// error wrapping ErrExists. netns.NewNamed switches the calling thread into the new
// namespace, so it runs on a locked thread of its own that is only
// returned to the scheduler once it is back in its original namespace;
// otherwise the thread dies with its goroutine.
func CreateNetNS(nsName string) (netns.NsHandle, error) {
	if _, err := os.Stat(NetNSPath(nsName)); err == nil {
		return netns.None(), fmt.Errorf("netns %s: %w", nsName, ErrExists)
	}
	if err := prepareNetnsDir(); err != nil {
		return netns.None(), err
	}
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{netns.None(), fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(nsName)
		if err := netns.Set(orig); err != nil {
			// Keep the thread locked: it ends with this goroutine.
			if h.IsOpen() {
				h.Close()
			}
			done <- result{netns.None(), fmt.Errorf("restore netns after creating %s: %w (terminating OS thread)", nsName, err)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("create netns %s: %w", nsName, err)
		}
		done <- result{h, err}
	}()
	r := <-done
	return r.h, r.err
}

// prepareNetnsDir makes /run/netns a shared mount point of its own, as
// "ip netns add" does. Otherwise the first "ip netns add" after us turns
// the directory into a mount point by bind-mounting it over itself, which
// hides the namespace mounts made before: they can then be neither
// unmounted nor removed (EBUSY) until that bind mount goes.
func prepareNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", netnsDir, err)
	}
	err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", netnsDir, err)
		}
		err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", netnsDir, err)
	}
	return nil
}

// DeleteNetNS unmounts and removes a named namespace, like "ip netns
// del". A namespace that is already gone is not an error.
func DeleteNetNS(nsName string) error {
	p := NetNSPath(nsName)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", nsName, err)
	}
	if err := os.Remove(p); errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("remove netns %s: %w (its mount is hidden under a later bind mount of %s; umount %s once nothing is mounted on it)", nsName, err, netnsDir, netnsDir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", nsName, err)
	}
	return nil
}

// listNamedNS returns the names of the mounted namespaces.
func listNamedNS() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", netnsDir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// sysctl is one /proc/sys/net value to write inside a namespace.
type sysctl struct{ key, value string }

// writeSysctls writes net sysctls inside the namespace at path:
// /proc/sys/net shows the namespace of the thread that opens it, so this
// is one of the few things that must run inside the namespace.
func writeSysctls(nsPath string, settings []sysctl) error {
	return ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		for _, s := range settings {
			p := filepath.Join("/proc/sys", s.key)
			if err := os.WriteFile(p, []byte(s.value), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", s.key, s.value, err)
			}
		}
		return nil
	})
}

// listenIn creates a listening socket inside the namespace at nsPath. A
// socket belongs to the namespace it was created in for its whole life, so
// only its creation needs the switched thread.
func listenIn(nsPath, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, filepath.Base(nsPath), err)
	}
	return l, nil
}
