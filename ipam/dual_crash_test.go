package ipam

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/store"
)

// dualCrashChildEnv, when set, makes TestDual_KillNine act as the child:
// it runs ADDs' and DELs' store steps on a dual-stack store until killed.
const dualCrashChildEnv = "VENI_IPAM_DUAL_CRASH_CHILD"

// Ensure a process killed with SIGKILL anywhere in Reserve, Commit or
// Release leaves no pod with half its stack and no half leaked: every
// allocation holds an IPv4 and an IPv6 of one ENI in its state, and every
// held address is named by its owner's allocation (store.Check, which
// knows the store is dual stack).
func TestDual_KillNine(t *testing.T) {
	if path := os.Getenv(dualCrashChildEnv); path != "" {
		dualCrashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	killNineRounds(t, "TestDual_KillNine", config.IPStackDual, func(a store.Allocation) bool { return a.IP.Is4() && a.IP6.Is6() })
}

// Ensure the same on an IPv6-only store (ip_stack ipv6): every allocation
// holds one IPv6 as its IP and nothing else, and no address is held by
// two owners or by an owner without an allocation.
func TestIPv6Only_KillNine(t *testing.T) {
	if path := os.Getenv(dualCrashChildEnv); path != "" {
		dualCrashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	killNineRounds(t, "TestIPv6Only_KillNine", config.IPStackV6, func(a store.Allocation) bool { return a.IP.Is6() && !a.IP6.IsValid() })
}

// killNineRounds seeds a store of stack with one ENI of 8 pods' addresses
// (IPv4 for ipv4 and dual, IPv6 for dual and ipv6), then six times runs
// test (re-executed as the child) for a random while, kills it with
// SIGKILL, and checks store.Check and whole(a) for every allocation.
func killNineRounds(t *testing.T, test, stack string, whole func(store.Allocation) bool) {
	path := filepath.Join(t.TempDir(), "veni.db")
	db := store.File{Path: path}
	mustUpdate(t, db, func(tx *store.WriteTx) error {
		err := tx.PutENI(store.ENI{
			ID: "eni-1", MAC: "02:00:00:00:00:01", InstanceID: testInstance, VSwitchID: "vsw-a",
			VSwitchCIDR: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.253"),
			IPv6CIDR: testCIDR6, Gateway6: gateway6Of(testCIDR6), Owned: true, State: store.ENIReady,
		})
		if err != nil {
			return err
		}
		for i := range 8 {
			for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}), netip.MustParseAddr(fmt.Sprintf("fd00:1::%x", 0x10+i))} {
				if (a.Is4() && stack == config.IPStackV6) || (a.Is6() && stack == config.IPStackV4) {
					continue
				}
				if err := tx.PutIP(store.IP{Addr: a, ENIID: "eni-1", State: store.IPFree}); err != nil {
					return err
				}
			}
		}
		return tx.PutPoolState(store.PoolState{Mode: config.PoolModeIP, Stack: stack})
	})
	for round := range 6 {
		ops := runDualChild(t, test, path, time.Duration(30+rand.IntN(300))*time.Millisecond)
		var allocs []store.Allocation
		err := db.View(func(tx *store.ReadTx) (err error) {
			for _, v := range tx.Check() {
				t.Errorf("round %d: store invariant: %s", round, v)
			}
			allocs, err = tx.Allocations()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range allocs {
			if !whole(a) {
				t.Errorf("round %d: %s holds %s / %s, not a whole %s pod", round, a.Key, a.IP, a.IP6, stack)
			}
		}
		t.Logf("round %d: child acknowledged %d ops, %d allocations", round, ops, len(allocs))
	}
}

// runDualChild runs the child for about d after its first op, kills it
// with SIGKILL and returns how many ops it reported done.
func runDualChild(tb testing.TB, test, path string, d time.Duration) int {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), dualCrashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan struct{}, 1<<16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "op ") {
				lines <- struct{}{}
			}
		}
	}()
	select {
	case <-lines:
	case <-time.After(20 * time.Second):
		tb.Fatal("child made no progress")
	}
	time.Sleep(d)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	n := 1
	for range lines {
		n++
	}
	_ = cmd.Wait()
	return n
}

// dualCrashChild reserves, commits and releases through ipam's own
// functions, as ADDs, DELs and GC do, forever.
func dualCrashChild(path string) {
	db := store.File{Path: path}
	for op := 0; ; op++ {
		var allocs []store.Allocation
		if err := db.View(func(tx *store.ReadTx) (err error) { allocs, err = tx.Allocations(); return err }); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var err error
		switch n := rand.IntN(3); {
		case n == 0 || len(allocs) == 0:
			_, err = Reserve(db, owner(fmt.Sprintf("c%d-%d", os.Getpid(), op)))
			if err != nil && strings.Contains(err.Error(), ErrPoolEmpty.Error()) {
				err = nil
			}
		case n == 1:
			err = Commit(db, allocs[rand.IntN(len(allocs))].Key, HostSide{Veth: "veni", Ifindex: 3}, nil)
		default:
			_, err = ReleaseAllocation(db, allocs[rand.IntN(len(allocs))], nil, time.Now())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("op %d\n", op)
	}
}
