package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ensure a claim excludes a second taker until it is released, and that
// Claimed sees it from outside.
func TestTryClaim_Exclusive(t *testing.T) {
	path := AllocatorClaim(ClaimsDir(filepath.Join(t.TempDir(), "veni.db")))
	a, err := TryClaim(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryClaim(path, false); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second TryClaim = %v, want ErrClaimed", err)
	}
	if held, err := Claimed(path); err != nil || !held {
		t.Fatalf("Claimed = %v, %v while held", held, err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if held, err := Claimed(path); err != nil || held {
		t.Fatalf("Claimed = %v, %v after release", held, err)
	}
	b, err := TryClaim(path, false)
	if err != nil {
		t.Fatalf("TryClaim after release: %v", err)
	}
	if err := b.Release(); err != nil || b.Release() != nil {
		t.Fatalf("release twice: %v", err)
	}
}

// Ensure an attachment claim removes its file on release, and that a waiter
// that locked the removed inode does not believe it holds the claim while
// a newer holder has the file the path now names.
func TestWaitClaim_RemovedFile(t *testing.T) {
	path := OwnerClaim(ClaimsDir(filepath.Join(t.TempDir(), "veni.db")), NewOwnerKey("c1", "eth0"))
	first, err := TryClaim(path, true)
	if err != nil {
		t.Fatal(err)
	}
	// A waiter has the old inode open: what WaitClaim's loop sees between
	// its open and its flock.
	stale, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("claim file left after release: %v", err)
	}
	second, err := TryClaim(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	if sameFile(stale, path) {
		t.Fatal("the removed inode is taken for the current claim file")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := WaitClaim(ctx, path, true); !errors.Is(err, ErrClaimed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitClaim while held = %v, want ErrClaimed and the deadline", err)
	}
}

// Ensure the kernel releases the claim of a process killed with SIGKILL:
// liveness must not depend on the holder cleaning up, nor on its PID being
// visible (the daemon may run in another PID namespace).
func TestClaim_HolderKilled(t *testing.T) {
	if os.Getenv("VENI_CLAIM_HOLDER") != "" {
		if _, err := TryClaim(os.Getenv("VENI_CLAIM_HOLDER"), true); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Hour)
		return
	}
	path := OwnerClaim(ClaimsDir(filepath.Join(t.TempDir(), "veni.db")), NewOwnerKey("c1", "eth0"))
	cmd := exec.Command(os.Args[0], "-test.run=^TestClaim_HolderKilled$")
	cmd.Env = append(os.Environ(), "VENI_CLAIM_HOLDER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf), "held") {
		t.Fatalf("holder did not take the claim: %q %v", buf, err)
	}
	if _, err := TryClaim(path, true); !errors.Is(err, ErrClaimed) {
		t.Fatalf("TryClaim while a live process holds it = %v", err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	c, err := TryClaim(path, true)
	if err != nil {
		t.Fatalf("claim of a killed holder not released: %v", err)
	}
	c.Release()
}
