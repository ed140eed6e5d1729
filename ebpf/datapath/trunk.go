package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ebpf/vlan"
)

// Trunk members (package ebpf/vlan). Unlike the fast path, the VLAN
// tagger is not optional: a member's traffic that leaves the trunk
// untagged is dropped by the VPC, so a node that cannot load it fails the
// member's ADD, whatever the datapath setting (plain included).
//
//	ADD:     TagMember before netplumb.SetupPod (the first packet is tagged)
//	release: netplumb.TeardownPod → UntagMember

// VLANPinRoot holds each node's tagger pins, beside the fast path's
// (fastpath.DefaultPinRoot), not in them: the fast path's pins are torn
// down when a node turns to the plain datapath or meets another veni
// version's maps, and member pods need their tags on every datapath.
const VLANPinRoot = "/sys/fs/bpf/veni-vlan"

// VLANPinDir is the tagger's pin directory of a node.
func VLANPinDir(instanceID string) (string, error) {
	return PinDirUnder(VLANPinRoot, instanceID)
}

// TeardownVLAN removes a node's tagger pins, detaching it from the trunk
// ("veni cleanup"). No pins is not an error; it reports whether there
// were.
func TeardownVLAN(instanceID string) (bool, error) {
	dir, err := VLANPinDir(instanceID)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return true, vlan.Teardown(dir)
}

// TagMember makes the trunk ENI trunkIfindex carry ip's traffic tagged
// with vid: the tagger attached to the trunk (idempotent) and ip recorded
// as a member. Call it in the node's network namespace. The caller undoes
// it with UntagMember.
func TagMember(instanceID string, trunkIfindex int, ip netip.Addr, vid int) (err error) {
	dir, err := VLANPinDir(instanceID)
	if err != nil {
		return err
	}
	if err := fastpath.EnsurePinDir(dir); err != nil {
		return fmt.Errorf("trunk member %s: %w", ip, err)
	}
	t, err := vlan.Open(dir)
	if err != nil {
		return fmt.Errorf("trunk member %s needs the eBPF VLAN tagger (this kernel has no 8021q or act_vlan to fall back on): %w", ip, err)
	}
	defer t.Close()
	if err := t.Attach(trunkIfindex); err != nil {
		return err
	}
	return t.SetMember(ip, vid)
}

// UntagMember stops tagging ip. Nothing to undo is not an error.
func UntagMember(instanceID string, ip netip.Addr) error {
	if instanceID == "" || !ip.IsValid() {
		return nil
	}
	dir, err := VLANPinDir(instanceID)
	if err != nil {
		return err
	}
	return vlan.ForgetPinned(dir, ip)
}

// CheckMember verifies that ip is tagged with vid.
func CheckMember(instanceID string, ip netip.Addr, vid int) error {
	dir, err := VLANPinDir(instanceID)
	if err != nil {
		return err
	}
	members, err := vlan.PinnedMembers(dir)
	if err != nil {
		return err
	}
	if got := members[ip]; got != vid {
		return fmt.Errorf("trunk member %s: tagged with vlan %d, want %d (DEL and ADD the pod again)", ip, got, vid)
	}
	return nil
}
