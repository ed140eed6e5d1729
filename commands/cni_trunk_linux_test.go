package commands

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/audit"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/fastpath"
	"github.com/veni-cni/veni/ebpf/vlan"
	"github.com/veni-cni/veni/internal/testutil"
	"github.com/veni-cni/veni/node"
	"github.com/veni-cni/veni/store"
)

// Trunk members through the CNI verbs, in-process (see cniNode): the
// node's ENI eth1 is its trunk, and the store holds idle members, so a
// member ADD is warm and needs no cloud. The VPC end of eth1 ("vpc")
// answers for the trunk's gateway and captures what the trunk sends.

var trunkMembers = []struct {
	id  string
	ip  netip.Addr
	vid int
}{
	{"eni-m1", netip.MustParseAddr("10.0.2.7"), 5},
	{"eni-m2", netip.MustParseAddr("10.0.2.8"), 6},
}

type trunkNode struct {
	*cniNode
	instance string
	peerNS   ns.NetNS
	peer     netlink.Link
}

// newTrunkNode is a cniNode whose ENI is a trunk carrying the two
// trunkMembers (idle), with trunking on, datapath dp, and a PodNetworking
// that gives pods labelled net=trunk a member.
func newTrunkNode(t *testing.T, dp string) *trunkNode {
	t.Helper()
	c := newCNINode(t, 3)
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := &trunkNode{cniNode: c, instance: "i-trunktest-" + hex.EncodeToString(b[:])}
	pinDir, err := datapath.PinDir(n.instance)
	if err != nil {
		t.Fatal(err)
	}
	vlanDir, err := datapath.VLANPinDir(n.instance)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pinDir); os.RemoveAll(vlanDir) })

	var cfg map[string]any
	path := filepath.Join(filepath.Dir(c.db.Path), "veni.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["enable_eni_trunking"], cfg["datapath"], cfg["security_groups"] = true, dp, []string{"sg-node"}
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	pn := `{"apiVersion":"network.alibabacloud.com/v1beta1","kind":"PodNetworking","metadata":{"name":"trunk-pods"},` +
		`"spec":{"eniOptions":{"eniType":"Trunk"},"selector":{"podSelector":{"matchLabels":{"net":"trunk"}}}}}`
	err = c.db.Update(func(tx *store.WriteTx) error {
		node, err := tx.Node()
		if err != nil {
			return err
		}
		node.InstanceID, node.TrunkSupported, node.MemberENIs = n.instance, true, len(trunkMembers)
		if err := tx.PutNode(node); err != nil {
			return err
		}
		trunk, err := tx.ENI("eni-1")
		if err != nil {
			return err
		}
		trunk.Kind, trunk.InstanceID = store.ENITrunk, n.instance
		if err := tx.PutENI(trunk); err != nil {
			return err
		}
		for i, m := range trunkMembers {
			err := tx.PutENI(store.ENI{
				ID: m.id, MAC: fmt.Sprintf("02:00:00:00:0f:%02x", i), InstanceID: n.instance, VSwitchID: "vsw-a",
				PrimaryIP: m.ip, SecurityGroupIDs: []string{"sg-node"}, Owned: true, State: store.ENIReady,
				Kind: store.ENIMember, TrunkID: "eni-1", VLANID: m.vid,
			})
			if err != nil {
				return err
			}
			if err := tx.PutIP(store.IP{Addr: m.ip, ENIID: m.id, State: store.IPFree}); err != nil {
				return err
			}
		}
		if err := tx.PutMirrorPodNetworking(store.PodNetworking{Name: "trunk-pods", Raw: []byte(pn)}); err != nil {
			return err
		}
		for _, p := range []struct{ name, net string }{{"m1", "trunk"}, {"m2", "trunk"}, {"m3", "trunk"}, {"s1", ""}} {
			labels := map[string]string{"app": "x"}
			if p.net != "" {
				labels["net"] = p.net
			}
			if err := tx.PutMirrorPod(store.Pod{Namespace: "default", Name: p.name, UID: "uid-" + p.name, Labels: labels}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The VPC end, in a namespace of its own: the trunk's gateway, so the
	// node resolves it, and a route back to the members.
	peerName, _ := testutil.NewNetNS(t)
	n.peerNS = mustNS(t, filepath.Join("/run/netns", peerName))
	err = c.nodeNS.Do(func(ns.NetNS) error {
		if l, err := netlink.LinkByName("eth1"); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				return err
			}
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1", HardwareAddr: cniENIMAC}, PeerName: "vpc", PeerNamespace: netlink.NsFd(int(n.peerNS.Fd()))}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		// The node's own route towards the VPC (its primary ENI's, on a
		// real node), for the reverse-path check of what arrives.
		l, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR("10.0.9.0/24")
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = n.peerNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("vpc")
		if err != nil {
			return err
		}
		n.peer = l
		a, _ := netlink.ParseAddr("10.0.1.253/24")
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR("10.0.2.0/24")
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *trunkNode) audit(t *testing.T) []audit.Problem {
	t.Helper()
	var rep audit.Report
	err := n.do(func() (err error) {
		rep, err = audit.Run(context.Background(), n.db, audit.Options{Links: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Problems
}

func mustNS(t *testing.T, path string) ns.NetNS {
	t.Helper()
	h, err := ns.GetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// capture opens an AF_PACKET socket on the VPC end that reports the VLAN
// tag of each frame (from the packet's auxdata).
func (n *trunkNode) capture(t *testing.T) int {
	t.Helper()
	var fd int
	err := n.peerNS.Do(func(ns.NetNS) error {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: n.peer.Attrs().Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// wantTagged sends UDP datagrams from the pod in netns to 10.0.9.9:dport
// (beyond the trunk's gateway) until one is seen on the VPC end, and
// checks its VLAN tag.
func (n *trunkNode) wantTagged(t *testing.T, fd int, netns string, src netip.Addr, dport uint16, vid int) {
	t.Helper()
	pod := mustNS(t, netns)
	buf, oob := make([]byte, 2048), make([]byte, 256)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		err := pod.Do(func(ns.NetNS) error {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP("10.0.9.9"), Port: int(dport)})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("veni"))
			return err
		})
		if err != nil {
			t.Fatalf("send from pod: %v", err)
		}
		for {
			nr, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil {
				break
			}
			f := buf[:nr]
			if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP || f[23] != unix.IPPROTO_UDP ||
				netip.AddrFrom4([4]byte(f[26:30])) != src || binary.BigEndian.Uint16(f[36:]) != dport {
				continue
			}
			got := 0
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA {
					aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
					if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
						got = int(aux.Vlan_tci & 0xfff)
					}
				}
			}
			if got != vid {
				t.Fatalf("datagram from %s left the trunk with vlan %d, want %d", src, got, vid)
			}
			return
		}
	}
	t.Fatalf("no datagram from %s reached the VPC end of the trunk", src)
}

// Ensure a pod a PodNetworking gives a trunk member gets the member's
// address (warm: an idle member, no cloud), its traffic leaves the trunk
// tagged with the member's VLAN ID on the plain datapath and on the eBPF
// fast path (bpf_redirect_neigh to the trunk still meets the tagger),
// frames tagged with its VLAN ID reach it, a shared pod on the same trunk
// stays untagged, CHECK passes, and DEL forgets the tag and frees the
// member for the next pod.
func TestCNIVerbs_TrunkMember(t *testing.T) {
	testutil.SkipOnOldKernel(t, "6.6", "TCX")
	for _, dp := range []string{"plain", "ebpf"} {
		t.Run(dp, func(t *testing.T) {
			n := newTrunkNode(t, dp)
			fd := n.capture(t)
			netns := podNetNS(t)
			args := n.args("m1", netns, "eth0")
			res, err := n.add(args)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			m := trunkMembers[0]
			if got := res.IPs[0].Address.IP.String(); got != m.ip.String() {
				t.Fatalf("member pod got %s, want the member's %s", got, m.ip)
			}
			a := n.allocations()
			if len(a) != 1 || a[0].ENIID != m.id || a[0].State != store.IPBound {
				t.Fatalf("allocations %+v", a)
			}
			if dp == "ebpf" {
				pin, _ := datapath.PinDir(n.instance)
				if _, err := os.Stat(filepath.Join(pin, "links")); err != nil {
					t.Fatalf("fast path not attached: %v", err)
				}
			}
			n.wantTagged(t, fd, netns, m.ip, 9001, m.vid)
			// veni status shows the trunk, the member held and tagged, the
			// other idle, and no member in the pool.
			var rep statusReport
			if err := n.do(func() error {
				env, err := node.Load(filepath.Join(filepath.Dir(n.db.Path), "veni.json"))
				rep = gatherStatus(env, time.Now())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if tr := rep.Trunk; tr == nil || tr.ID != "eni-1" || len(tr.Members) != 2 || !tr.Members[0].Tagged || tr.Members[0].Pod != "default/m1" || tr.Members[1].Pod != "" {
				t.Fatalf("status trunk %+v", rep.Trunk)
			}
			if len(rep.Pool.ENIs) != 1 {
				t.Fatalf("status pool ENIs %+v, want the trunk alone", rep.Pool.ENIs)
			}
			if dp == "plain" {
				// A daemon on the plain datapath removes the fast path's
				// pins of an earlier run; the member stays tagged.
				pin, _ := datapath.PinDir(n.instance)
				if err := os.MkdirAll(pin, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := n.do(func() error { return fastpath.Teardown(pin) }); err != nil {
					t.Fatal(err)
				}
				n.wantTagged(t, fd, netns, m.ip, 9011, m.vid)
			}

			shared := podNetNS(t)
			sres, err := n.add(n.args("s1", shared, "eth0"))
			if err != nil {
				t.Fatalf("ADD shared pod: %v", err)
			}
			sip := netip.MustParseAddr(sres.IPs[0].Address.IP.String())
			if sip != n.free[0] {
				t.Fatalf("shared pod got %s, want the trunk's %s", sip, n.free[0])
			}
			n.wantTagged(t, fd, shared, sip, 9002, 0)

			// Frames for the member tagged with its VLAN ID reach it.
			got := make(chan string, 1)
			pod := mustNS(t, netns)
			var lc *net.UDPConn
			if err := pod.Do(func(ns.NetNS) error {
				lc, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 7777})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer lc.Close()
			go func() {
				b := make([]byte, 64)
				_ = lc.SetReadDeadline(time.Now().Add(3 * time.Second))
				k, _ := lc.Read(b)
				got <- string(b[:k])
			}()
			trunkMAC := cniENIMAC
			for _, f := range []struct {
				vid     int
				payload string
			}{{m.vid + 1, "wrong vlan"}, {0, "untagged"}, {m.vid, "tagged"}} {
				frame := udpFrame(trunkMAC, n.peer.Attrs().HardwareAddr, netip.MustParseAddr("10.0.9.9"), m.ip, 7777, f.vid, f.payload)
				if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: n.peer.Attrs().Index, Halen: 6}); err != nil {
					t.Fatal(err)
				}
			}
			if s := <-got; s != "tagged" {
				t.Fatalf("member pod received %q first, want only the frame tagged with its vlan", s)
			}
			if dp == "ebpf" {
				// The fast path carried both ways, and the tagger still
				// saw them: bpf_redirect_neigh to the trunk meets its
				// egress hook, and untag ran before from_eni.
				pin, _ := datapath.PinDir(n.instance)
				var cnt fastpath.Counters
				err := n.do(func() error {
					d, err := fastpath.Open(fastpath.Options{PinDir: pin})
					if err != nil {
						return err
					}
					defer d.Close()
					cnt, err = d.Counters()
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if cnt.FromPod.RedirectNeigh == 0 || cnt.FromENI.RedirectPeer == 0 {
					t.Fatalf("fast path counters %+v %+v: want redirect_neigh from the pod and redirect_peer from the trunk", cnt.FromPod, cnt.FromENI)
				}
			}

			check := *args
			check.StdinData = withPrevResult(t, n.conf, res)
			if err := n.do(func() error { return testutils.CmdCheckWithArgs(&check, func() error { return cmdCheck(&check) }) }); err != nil {
				t.Fatalf("CHECK: %v", err)
			}
			if err := n.do(func() error { return testutils.CmdDelWithArgs(args, func() error { return cmdDel(args) }) }); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			vdir, _ := datapath.VLANPinDir(n.instance)
			if left, err := vlan.PinnedMembers(vdir); err != nil || len(left) != 0 {
				t.Fatalf("vlan members after DEL: %v %v", left, err)
			}
			// The member goes to the next pod that asks, warm.
			if res2, err := n.add(n.args("m2", podNetNS(t), "eth0")); err != nil || res2.IPs[0].Address.IP.String() != m.ip.String() {
				t.Fatalf("next member pod: %v %v", res2, err)
			}
			// veni ipam verify's audit covers members: clean now, and a
			// lost tag is reported.
			if problems := n.audit(t); len(problems) != 0 {
				t.Fatalf("audit of member and shared pods: %v", problems)
			}
			if err := vlan.ForgetPinned(vdir, m.ip); err != nil {
				t.Fatal(err)
			}
			if problems := n.audit(t); len(problems) != 1 || problems[0].Kind != audit.KindMember {
				t.Fatalf("audit after the tag was lost: %v, want one member problem", problems)
			}
			// veni cleanup's part: the tagger's pins go, and with them its
			// hooks on the trunk.
			if err := vlan.ForgetPinned(vdir, m.ip); err != nil {
				t.Fatal(err)
			}
			if had, err := datapath.TeardownVLAN(n.instance); err != nil || !had {
				t.Fatalf("teardown vlan pins: %v %v", had, err)
			}
			if _, err := os.Stat(vdir); !os.IsNotExist(err) {
				t.Fatalf("vlan pins left after teardown: %v", err)
			}
		})
	}
}

// Ensure a member pod on a trunk whose members are all taken fails at once
// with CNI error 11 saying why, and leaves nothing reserved.
func TestCNIVerbs_TrunkMemberLimit(t *testing.T) {
	n := newTrunkNode(t, "plain")
	for _, name := range []string{"m1", "m2"} {
		if _, err := n.add(n.args(name, podNetNS(t), "eth0")); err != nil {
			t.Fatalf("ADD %s: %v", name, err)
		}
	}
	start := time.Now()
	_, err := n.add(n.args("m3", podNetNS(t), "eth0"))
	wantCode(t, err, types.ErrTryAgainLater, "allows 2")
	if took := time.Since(start); took > time.Second {
		t.Errorf("the limit took %s", took)
	}
	for _, a := range n.allocations() {
		if a.PodName == "m3" {
			t.Fatalf("m3 left a reservation: %+v", a)
		}
	}
	if !strings.Contains(err.Error(), "member") {
		t.Errorf("error does not name members: %v", err)
	}
}

// udpFrame builds an Ethernet frame (802.1Q-tagged when vid > 0) with a
// UDP/IPv4 datagram (no UDP checksum).
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, dport uint16, vid int, payload string) []byte {
	b := append(append([]byte{}, dstMAC...), srcMAC...)
	if vid > 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, uint16(vid))
	}
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], uint16(28+len(payload)))
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	b = append(b, ip...)
	b = binary.BigEndian.AppendUint16(b, 40000)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = binary.BigEndian.AppendUint16(b, 0)
	return append(b, payload...)
}
