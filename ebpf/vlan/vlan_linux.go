package vlan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// MinVLANID and MaxVLANID bound an 802.1Q VLAN ID (0 is "no VLAN", 4095
// reserved).
const (
	MinVLANID = 1
	MaxVLANID = 4094
)

// Errors.
var (
	// ErrInvalid: an address or VLAN ID a member cannot have.
	ErrInvalid = errors.New("invalid vlan member")
	// ErrNotBPFFS: the pin directory is not on a bpf filesystem.
	ErrNotBPFFS = errors.New("pin directory is not on bpffs")
)

// Tagger is the node's loaded tagger. Close releases its descriptors;
// the pinned maps and links stay.
type Tagger struct {
	objs vlanObjects
	dir  string
}

// Open loads the programs with the maps pinned in dir (created; it must
// be on bpffs), reusing maps pinned there before.
//
// May return an error wrapping ErrNotBPFFS, or ebpf.ErrMapIncompatible
// when dir holds another version's maps.
func Open(dir string) (_ *Tagger, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create vlan pin dir: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotBPFFS)
	}
	if err := os.MkdirAll(filepath.Join(dir, "links"), 0o700); err != nil {
		return nil, fmt.Errorf("create vlan link dir: %w", err)
	}
	t := &Tagger{dir: dir}
	if err := loadVlanObjects(&t.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}); err != nil {
		return nil, fmt.Errorf("load vlan tagger: %w", err)
	}
	return t, nil
}

// Loaded reports whether dir holds a tagger's pinned member map: a trunk
// member was added on this node since its pins were made.
func Loaded(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "veni_vlan_members"))
	return err == nil
}

// Close releases the Tagger's file descriptors.
func (t *Tagger) Close() error { return t.objs.Close() }

func (t *Tagger) linkPath(ifindex int, dir string) string {
	return filepath.Join(t.dir, "links", "trunk-"+strconv.Itoa(ifindex)+"-"+dir)
}

// Attach puts untag at the head of ifindex's TCX ingress and tag at the
// tail of its egress (resolved in the calling thread's network namespace)
// and pins the links. It is idempotent: links of these programs already on
// ifindex are kept, so every member ADD may call it; stale ones (another
// version, a link that went away) are replaced.
func (t *Tagger) Attach(ifindex int) error {
	if ifindex <= 0 {
		return fmt.Errorf("%w: trunk ifindex %d", ErrInvalid, ifindex)
	}
	unlock, err := lockDir(t.dir)
	if err != nil {
		return err
	}
	defer unlock()
	for _, h := range []struct {
		prog   *ebpf.Program
		at     ebpf.AttachType
		anchor link.Anchor
		name   string
	}{
		{t.objs.Untag, ebpf.AttachTCXIngress, link.Head(), "in"},
		{t.objs.Tag, ebpf.AttachTCXEgress, link.Tail(), "out"},
	} {
		path := t.linkPath(ifindex, h.name)
		if attachedAs(h.prog, path, ifindex) {
			continue
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: h.prog, Attach: h.at, Anchor: h.anchor})
		if err != nil {
			return fmt.Errorf("attach vlan %s to ifindex %d: %w", h.name, ifindex, err)
		}
		// The new link is attached before the old one goes: no gap.
		err = errors.Join(unpinLink(path), l.Pin(path))
		l.Close() // pinned, the pin keeps it; not pinned, closing detaches it
		if err != nil {
			return fmt.Errorf("pin vlan %s link of ifindex %d: %w", h.name, ifindex, err)
		}
	}
	return nil
}

// Detach takes the tagger off ifindex. Not attached is not an error.
func (t *Tagger) Detach(ifindex int) error {
	return errors.Join(unpinLink(t.linkPath(ifindex, "in")), unpinLink(t.linkPath(ifindex, "out")))
}

func key(ip netip.Addr) vlanMemberKey {
	var k vlanMemberKey
	b := ip.Unmap().As16() // IPv4 as ::ffff:a.b.c.d, what vlan.c builds
	for i := range k.Addr {
		k.Addr[i] = binary.NativeEndian.Uint32(b[4*i:]) // the map holds the bytes as they are
	}
	return k
}

// SetMember tags ip's traffic with vid (and accepts frames tagged vid for
// ip). Setting it again is no error.
func (t *Tagger) SetMember(ip netip.Addr, vid int) error {
	if !ip.IsValid() || vid < MinVLANID || vid > MaxVLANID {
		return fmt.Errorf("%w: %s vlan %d", ErrInvalid, ip, vid)
	}
	if err := t.objs.VeniVlanMembers.Update(key(ip), uint32(vid), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("vlan member %s vid %d: %w", ip, vid, err)
	}
	return nil
}

// ForgetMember stops tagging ip. Not a member is not an error.
func (t *Tagger) ForgetMember(ip netip.Addr) error {
	err := t.objs.VeniVlanMembers.Delete(key(ip))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget vlan member %s: %w", ip, err)
	}
	return nil
}

// Members returns every member address with its VLAN ID.
func (t *Tagger) Members() (map[netip.Addr]int, error) { return members(t.objs.VeniVlanMembers) }

func members(m *ebpf.Map) (map[netip.Addr]int, error) {
	out := make(map[netip.Addr]int)
	var (
		k   vlanMemberKey
		vid uint32
	)
	it := m.Iterate()
	for it.Next(&k, &vid) {
		var b [16]byte
		for i, w := range k.Addr {
			binary.NativeEndian.PutUint32(b[4*i:], w)
		}
		out[netip.AddrFrom16(b).Unmap()] = int(vid)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list vlan members: %w", err)
	}
	return out, nil
}

// ForgetPinned is ForgetMember on the member map pinned in dir, without
// loading the programs: what a pod's release needs. No pins (no member
// was ever added on the node) is not an error.
func ForgetPinned(dir string, ip netip.Addr) error {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "veni_vlan_members"), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open vlan member map: %w", err)
	}
	defer m.Close()
	err = m.Delete(key(ip))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget vlan member %s: %w", ip, err)
	}
	return nil
}

// PinnedMembers is Members on the map pinned in dir; no pins, no members.
func PinnedMembers(dir string) (map[netip.Addr]int, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "veni_vlan_members"), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return map[netip.Addr]int{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open vlan member map: %w", err)
	}
	defer m.Close()
	return members(m)
}

// Teardown detaches the tagger from every link it was attached to in dir
// and removes dir's pins (maps and links). A missing dir is not an error.
func Teardown(dir string) error {
	entries, err := os.ReadDir(filepath.Join(dir, "links"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vlan teardown %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		// Through a link fd: closing it after Unpin detaches at once.
		errs = append(errs, unpinLink(filepath.Join(dir, "links", e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vlan teardown %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("vlan teardown %s: %w", dir, err)
	}
	return nil
}

// Counters are the tagger's packet counts, summed over CPUs.
type Counters struct {
	Tagged        uint64 // member packets that left tagged
	Untagged      uint64 // tagged frames popped and kept
	DropWrongVLAN uint64 // tagged for no member, or for another member's VLAN ID
	DropNotTagged uint64 // untagged frames for a member's address
	DropPush      uint64 // member packets that could not be tagged
}

// Counters reads the counters.
func (t *Tagger) Counters() (Counters, error) {
	var c Counters
	for i, dst := range []*uint64{&c.Tagged, &c.Untagged, &c.DropWrongVLAN, &c.DropNotTagged, &c.DropPush} {
		var per []uint64
		if err := t.objs.VeniVlanCounters.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("read vlan counter %d: %w", i, err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return c, nil
}

// attachedAs reports whether the link pinned at path attaches a program
// with prog's code (its tag: every load makes a new program) to ifindex.
func attachedAs(prog *ebpf.Program, path string, ifindex int) bool {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return false
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false
	}
	// A link whose device is gone reports no ifindex.
	if tcx := info.TCX(); tcx == nil || int(tcx.Ifindex) != ifindex {
		return false
	}
	pinned, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return false
	}
	defer pinned.Close()
	have, err := pinned.Info()
	if err != nil {
		return false
	}
	want, err := prog.Info()
	return err == nil && have.Tag != "" && have.Tag == want.Tag
}

// unpinLink removes the link pinned at path, which detaches it. A missing
// pin is not an error.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned link %s: %w", path, err)
	}
	defer l.Close()
	return l.Unpin()
}

// lockDir serializes attaches of parallel ADDs on one node.
func lockDir(path string) (func(), error) {
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
