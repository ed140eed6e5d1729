package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv, when set, makes TestStore_CrashSafety act as the child
// process: it mutates the store at that path until it is killed.
const crashChildEnv = "VENI_STORE_CRASH_CHILD"

// Ensure a process killed with SIGKILL at any point leaves a store that
// opens, passes Check, and holds every transaction it saw committed.
func TestStore_CrashSafety(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "veni.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := make([]string, 20)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.0.%d", 10+i)
	}
	mustSeed(t, db, addrs...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 6 {
		acked := runAndKill(t, path, time.Duration(20+rand.IntN(200))*time.Millisecond)
		db, err := Open(path, Options{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		mustCheck(t, db)
		var last uint64
		_ = db.View(func(tx *ReadTx) error {
			evs, err := tx.Events(0, 0)
			if len(evs) > 0 {
				last, _ = strconv.ParseUint(evs[len(evs)-1].Message, 10, 64)
			}
			return err
		})
		if last < acked {
			t.Errorf("round %d: child saw op %d committed, store has only up to %d", round, acked, last)
		}
		t.Logf("round %d: child acknowledged %d ops, store has %d", round, acked, last)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runAndKill runs the child for about d, kills it with SIGKILL and returns
// the last op number it reported as committed.
func runAndKill(tb testing.TB, path string, d time.Duration) uint64 {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStore_CrashSafety$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan uint64, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "committed "), 10, 64); err == nil {
				lines <- n
			}
		}
	}()
	// Wait for the first commit so the kill lands inside the workload,
	// not in the child's start-up.
	var acked uint64
	select {
	case acked = <-lines:
	case <-time.After(20 * time.Second):
		tb.Fatal("child made no progress")
	}
	time.Sleep(d)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	for n := range lines {
		acked = max(acked, n)
	}
	_ = cmd.Wait()
	return acked
}

// crashChild mutates the store forever: each transaction reserves, binds or
// releases an IP the way ipam does, or churns a free IP, and logs its op
// number as an event. It prints the number once Update has returned, i.e.
// once the commit is on disk.
func crashChild(path string) {
	op := uint64(0)
	for {
		db, err := Open(path, Options{Timeout: 10 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		last, err := lastOp(db)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		op = max(op, last) + 1
		err = db.Update(func(tx *WriteTx) error {
			if err := crashStep(tx, op); err != nil {
				return err
			}
			_, err := tx.AppendEvent(Event{Reason: "CrashTest", Message: strconv.FormatUint(op, 10)})
			return err
		})
		db.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", op)
	}
}

func lastOp(db *DB) (uint64, error) {
	var n uint64
	err := db.View(func(tx *ReadTx) error {
		evs, err := tx.Events(0, 0)
		if len(evs) > 0 {
			n, _ = strconv.ParseUint(evs[len(evs)-1].Message, 10, 64)
		}
		return err
	})
	return n, err
}

func crashStep(tx *WriteTx, op uint64) error {
	ips, err := tx.IPs()
	if err != nil || len(ips) == 0 {
		return err
	}
	ip := ips[rand.IntN(len(ips))]
	now := time.Now()
	switch ip.State {
	case IPFree:
		if rand.IntN(4) == 0 {
			// Churn: drop the free IP and add another address in its place.
			if err := tx.DeleteIP(ip.Addr); err != nil {
				return err
			}
			next := netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + rand.IntN(200))})
			if _, err := tx.IP(next); err == nil {
				next = ip.Addr
			}
			return tx.PutIP(IP{Addr: next, ENIID: ip.ENIID, State: IPFree, AddedAt: now, FreeSince: now})
		}
		return reserve(tx, ip.Addr, NewOwnerKey(fmt.Sprintf("c%d", op), "eth0"))
	case IPReserved:
		a, err := tx.Allocation(ip.Owner)
		if err != nil {
			return err
		}
		ip.State, a.State, a.BoundAt = IPBound, IPBound, now
		if err := tx.PutIP(ip); err != nil {
			return err
		}
		return tx.PutAllocation(a)
	default:
		if err := tx.DeleteAllocation(ip.Owner); err != nil {
			return err
		}
		return tx.PutIP(IP{Addr: ip.Addr, ENIID: ip.ENIID, State: IPFree, AddedAt: ip.AddedAt, FreeSince: now})
	}
}
