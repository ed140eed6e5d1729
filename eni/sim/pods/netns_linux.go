package pods

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// netnsDir is where named namespaces live, as "ip netns" keeps them.
const netnsDir = "/run/netns"

// NetNSPath is the path of the named network namespace name.
func NetNSPath(name string) string { return filepath.Join(netnsDir, name) }

// CreateNetNS creates a named network namespace for a pod (visible to
// "ip netns") with its loopback up, and returns its path.
func CreateNetNS(name string) (path string, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return "", fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	defer h.Close()
	upErr := loopbackUp()
	if err := netns.Set(orig); err != nil {
		// The thread is in the pod's namespace and cannot come back: keep
		// it locked so the runtime discards it with this goroutine.
		runtime.LockOSThread()
		return "", fmt.Errorf("restore netns after creating %s: %w", name, err)
	}
	if upErr != nil {
		_ = netns.DeleteNamed(name)
		return "", fmt.Errorf("netns %s: loopback up: %w", name, upErr)
	}
	return NetNSPath(name), nil
}

// DeleteNetNS removes a named namespace; one already gone is not an error.
func DeleteNetNS(name string) error {
	err := netns.DeleteNamed(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}
