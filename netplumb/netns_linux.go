package netplumb

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetNS is an open network namespace. Its Do runs a closure with the
// calling OS thread switched into the namespace (containernetworking's
// design: a new goroutine locked to its thread, which is thrown away if
// switching back fails). Close it when done.
type NetNS = ns.NetNS

// OpenNetNS opens the namespace at path (a bind mount under /var/run/netns
// or /proc/<pid>/ns/net). May return an error wrapping ErrNetNSNotFound
// (also when the path exists but is no longer a namespace mount).
func OpenNetNS(path string) (NetNS, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		if errors.As(err, new(ns.NSPathNotExistErr)) || errors.As(err, new(ns.NSPathNotNSErr)) {
			return nil, fmt.Errorf("open netns %s: %w", path, ErrNetNSNotFound)
		}
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	return n, nil
}

// inNetNS runs fn with the thread in the namespace at path, or directly
// when path is "" (the caller's namespace). fn must not start goroutines.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	n, err := OpenNetNS(path)
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Do(func(NetNS) error { return fn() })
}

// openHandle returns a netlink handle whose sockets live in the namespace
// at path ("" is the caller's namespace). Requests through it act on that
// namespace from any thread, so plain netlink work needs no Do. May return
// an error wrapping ErrNetNSNotFound. The caller must Close the handle.
func openHandle(path string) (*netlink.Handle, error) {
	if path == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return h, nil
	}
	nsh, err := openNSHandle(path)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return h, nil
}

// openNSHandle opens path as a netns file descriptor (for NewHandleAt and
// for moving a veth end into it).
//
// A path that exists but is no namespace mount is reported as
// ErrNetNSNotFound too: that is what a runtime leaves for a moment between
// unmounting a sandbox's namespace and removing the file.
func openNSHandle(path string) (netns.NsHandle, error) {
	if err := ns.IsNSorErr(path); err != nil {
		var notNS ns.NSPathNotNSErr
		switch {
		case errors.As(err, new(ns.NSPathNotExistErr)):
			return netns.None(), fmt.Errorf("open netns %s: %w", path, ErrNetNSNotFound)
		case errors.As(err, &notNS):
			return netns.None(), fmt.Errorf("open netns %s: %w (not a namespace mount: already unmounted?)", path, ErrNetNSNotFound)
		}
		return netns.None(), fmt.Errorf("open netns %s: %w", path, err)
	}
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return netns.None(), fmt.Errorf("open netns %s: %w", path, ErrNetNSNotFound)
		}
		return netns.None(), fmt.Errorf("open netns %s: %w", path, err)
	}
	return nsh, nil
}

// Sysctl reads a /proc/sys entry, or writes value and reads it back.
// name uses "/" separators ("net/ipv4/conf/eth1/rp_filter") so interface
// names with dots stay intact. /proc/sys/net belongs to the namespace of
// the thread that opens it: call it inside NetNS.Do to reach a namespace
// other than the caller's.
func Sysctl(name string, value ...string) (string, error) {
	if len(value) > 1 {
		return "", fmt.Errorf("sysctl %s: more than one value: %w", name, ErrInvalidConfig)
	}
	out, err := sysctl.Sysctl(name, value...)
	if err != nil {
		if len(value) == 1 {
			return "", fmt.Errorf("sysctl %s=%s: %w", name, value[0], err)
		}
		return "", fmt.Errorf("sysctl %s: %w", name, err)
	}
	return out, nil
}

// setSysctls writes name=value pairs in order, in the current namespace.
func setSysctls(kv ...[2]string) error {
	for _, p := range kv {
		if _, err := Sysctl(p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

// setupHandles is what an ADD's plumbing holds: a handle in the node
// namespace (hostNS, "" for the caller's), the pod's namespace and a
// handle in it. open checks that the pod has no link ifName yet (else an
// error wrapping ErrPodInterfaceExists: the runtime sent ADD twice).
type setupHandles struct {
	host  *netlink.Handle
	podNS netns.NsHandle
	pod   *netlink.Handle
}

func openSetupHandles(hostNS, podNetNS, ifName string) (h setupHandles, err error) {
	h.podNS = netns.None() // not fd 0: Close must not close stdin
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if h.host, err = openHandle(hostNS); err != nil {
		return h, err
	}
	if h.podNS, err = openNSHandle(podNetNS); err != nil {
		return h, err
	}
	if h.pod, err = netlink.NewHandleAt(h.podNS); err != nil {
		return h, fmt.Errorf("netlink handle in %s: %w", podNetNS, err)
	}
	if _, err := linkByName(h.pod, ifName); err == nil {
		return h, fmt.Errorf("%s in %s: %w", ifName, podNetNS, ErrPodInterfaceExists)
	} else if !errors.Is(err, ErrLinkNotFound) {
		return h, err
	}
	return h, nil
}

// Close closes what open opened.
func (h setupHandles) Close() {
	if h.pod != nil {
		h.pod.Close()
	}
	if h.podNS.IsOpen() {
		h.podNS.Close()
	}
	if h.host != nil {
		h.host.Close()
	}
}
