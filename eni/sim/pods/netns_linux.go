package pods

import (
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/eni/sim/fabric"
)

// CreateNetNS creates a named network namespace for a pod (visible to
// "ip netns", created the way the fabric creates its nodes) with its
// loopback up, as runtimes do for every sandbox, and returns its path.
func CreateNetNS(name string) (path string, err error) {
	h, err := fabric.CreateNetNS(name)
	if err != nil {
		return "", err
	}
	h.Close()
	path = fabric.NetNSPath(name)
	if err := ns.WithNetNSPath(path, func(ns.NetNS) error { return loopbackUp() }); err != nil {
		_ = fabric.DeleteNetNS(name)
		return "", fmt.Errorf("netns %s: loopback up: %w", name, err)
	}
	return path, nil
}

// DeleteNetNS removes a named namespace; one already gone is not an error.
func DeleteNetNS(name string) error {
	return fabric.DeleteNetNS(name)
}
