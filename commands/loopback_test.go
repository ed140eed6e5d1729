package commands

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/veni-cni/veni/internal/testutil"
)

// mustLoopbackNetNS returns a throwaway sandbox (its lo down, as a new
// namespace has it) and a netlink handle inside it.
func mustLoopbackNetNS(tb testing.TB) (string, *netlink.Handle) {
	tb.Helper()
	name, nsh := testutil.NewNetNS(tb)
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return filepath.Join("/run/netns", name), h
}

func loUp(tb testing.TB, h *netlink.Handle) bool {
	tb.Helper()
	lo, err := h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	return lo.Attrs().Flags&net.FlagUp != 0
}

// Ensure ADD brings lo up and reports it at every spec version a runtime
// may configure (containerd 1.6 sends 0.3.1), CHECK sees lo go down, and
// DEL leaves lo alone.
func TestLoopback_AddCheckDel_Versions(t *testing.T) {
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			path, h := mustLoopbackNetNS(t)
			if loUp(t, h) {
				t.Fatal("lo up in a new namespace before ADD")
			}
			args := &skel.CmdArgs{
				ContainerID: "loopback-test",
				Netns:       path,
				IfName:      "lo",
				StdinData:   fmt.Appendf(nil, `{"cniVersion":%q,"name":"cni-loopback","type":"loopback"}`, v),
			}
			res, out, err := testutils.CmdAddWithArgs(args, func() error { return loopbackAdd(args) })
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if !loUp(t, h) {
				t.Fatal("lo still down after ADD")
			}
			if res.Version() != v {
				t.Fatalf("result version %s, want %s: %s", res.Version(), v, out)
			}
			cur, err := types100.NewResultFromResult(res)
			if err != nil {
				t.Fatal(err)
			}
			if len(cur.Interfaces) != 1 || cur.Interfaces[0].Name != "lo" || cur.Interfaces[0].Sandbox != path {
				t.Fatalf("interfaces %+v, want lo in %s", cur.Interfaces, path)
			}
			if len(cur.IPs) == 0 || cur.IPs[0].Address.String() != "127.0.0.1/8" {
				t.Fatalf("ips %+v, want 127.0.0.1/8 first", cur.IPs)
			}

			if v != "0.3.1" { // CHECK exists from 0.4.0 on
				if err := testutils.CmdCheckWithArgs(args, func() error { return loopbackCheck(args) }); err != nil {
					t.Fatalf("CHECK with lo up: %v", err)
				}
				lo, err := h.LinkByName("lo")
				if err != nil {
					t.Fatal(err)
				}
				if err := h.LinkSetDown(lo); err != nil {
					t.Fatal(err)
				}
				err = testutils.CmdCheckWithArgs(args, func() error { return loopbackCheck(args) })
				if err == nil || !strings.Contains(err.Error(), "lo is down") {
					t.Fatalf("CHECK with lo down = %v, want an error saying so", err)
				}
				if err := h.LinkSetUp(lo); err != nil {
					t.Fatal(err)
				}
			}

			if err := testutils.CmdDelWithArgs(args, func() error { return loopbackDel(args) }); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if !loUp(t, h) {
				t.Fatal("DEL took lo down")
			}
		})
	}
}

// Ensure a previous plugin's result passes through ADD unchanged, as the
// reference loopback plugin does when it is chained.
func TestLoopback_Add_PrevResult(t *testing.T) {
	path, h := mustLoopbackNetNS(t)
	prev := `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"interface":0,"address":"172.30.1.5/32"}]}`
	args := &skel.CmdArgs{ContainerID: "c", Netns: path, IfName: "lo",
		StdinData: []byte(`{"cniVersion":"1.0.0","name":"chain","type":"loopback","prevResult":` + prev + `}`)}
	res, out, err := testutils.CmdAddWithArgs(args, func() error { return loopbackAdd(args) })
	if err != nil {
		t.Fatal(err)
	}
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.IPs) != 1 || cur.IPs[0].Address.String() != "172.30.1.5/32" || cur.Interfaces[0].Name != "eth0" {
		t.Fatalf("prevResult not passed through: %s", out)
	}
	if !loUp(t, h) {
		t.Fatal("lo down after ADD with a prevResult")
	}
}

// Ensure bad input gets a CNI error with the spec's code, and DEL of a
// sandbox that is already gone (containerd's second DEL) succeeds.
func TestLoopback_Errors(t *testing.T) {
	notNS := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(notNS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := []byte(`{"cniVersion":"1.0.0","name":"cni-loopback","type":"loopback"}`)
	cases := []struct {
		name  string
		verb  func(*skel.CmdArgs) error
		netns string
		stdin []byte
		code  uint
	}{
		{"add: netns is a plain file", loopbackAdd, notNS, good, types.ErrInvalidEnvironmentVariables},
		{"add: netns missing", loopbackAdd, "/run/netns/veni-no-such-netns", good, types.ErrInvalidEnvironmentVariables},
		{"add: config not json", loopbackAdd, notNS, []byte(`{"cniVersion":`), types.ErrDecodingFailure},
		{"check: netns missing", loopbackCheck, "/run/netns/veni-no-such-netns", good, types.ErrInvalidEnvironmentVariables},
		{"del: netns gone", loopbackDel, "/run/netns/veni-no-such-netns", good, 0},
		{"del: no netns", loopbackDel, "", good, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.verb(&skel.CmdArgs{ContainerID: "c", Netns: tc.netns, IfName: "lo", StdinData: tc.stdin})
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != tc.code {
				t.Fatalf("error %v, want CNI code %d", err, tc.code)
			}
		})
	}
}
