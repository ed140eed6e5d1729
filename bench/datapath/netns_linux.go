package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// startIn starts cmd inside the network namespace at nsPath: the child is
// forked from a thread switched into it, so it needs no nsenter and sees
// the namespace from its first instruction. With cpu >= 0 the child is
// bound to that CPU the same way, by inheriting the forking thread's
// affinity. The child leads its own process group, which killGroup ends
// with everything it spawned.
func startIn(nsPath string, cpu int, cmd *exec.Cmd) error {
	// Pdeathsig: a benchmark killed midway must not leave servers
	// holding the namespaces (and so the sim's links) alive.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		if cpu < 0 {
			return cmd.Start()
		}
		var old, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return fmt.Errorf("cpu affinity: %w", err)
		}
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return fmt.Errorf("bind to cpu %d: %w", cpu, err)
		}
		// ns.Do keeps this thread locked; give it back as it was.
		defer func() { _ = unix.SchedSetaffinity(0, &old) }()
		return cmd.Start()
	})
	if err != nil {
		return fmt.Errorf("start %s in %s: %w", cmd.Path, nsPath, err)
	}
	return nil
}

// killGroup kills the process group that pid leads (startIn makes every
// child a group leader).
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}

// readIn reads a file of /proc/thread-self from inside the network
// namespace at nsPath. /proc/self would show the namespace of the main
// thread, not of the one ns.Do switched.
func readIn(nsPath, name string) ([]byte, error) {
	var b []byte
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/" + name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", name, nsPath, err)
	}
	return b, nil
}

// forwarded returns the packets (IPv4 and IPv6) the IP stack of the
// namespace at nsPath has forwarded since it was created.
func forwarded(nsPath string) (uint64, error) {
	b, err := readIn(nsPath, "net/snmp")
	if err != nil {
		return 0, err
	}
	n, err := parseSnmpForwarded(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", nsPath, err)
	}
	b6, err := readIn(nsPath, "net/snmp6")
	if err != nil {
		return 0, err
	}
	n6, err := parseSnmp6Forwarded(b6)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", nsPath, err)
	}
	return n + n6, nil
}

// waitListening waits until a TCP socket listens on port in the namespace
// at nsPath, or the process started to serve it exits. Polling the socket
// table works for every server alike; their own "ready" lines are
// buffered when stdout is a pipe.
func waitListening(ctx context.Context, nsPath string, port int, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		b, err := readIn(nsPath, "net/tcp")
		if err != nil {
			return err
		}
		b6, err := readIn(nsPath, "net/tcp6")
		if err != nil {
			return err
		}
		if listensOn(b, port) || listensOn(b6, port) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w: exited before listening on port %d", errNotReady, port)
		case <-ctx.Done():
			return fmt.Errorf("%w: nothing listens on port %d in %s", errNotReady, port, nsPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listensOn reports whether a /proc/net/tcp or tcp6 table has a socket in
// LISTEN (state 0A) on port.
func listensOn(table []byte, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		// "0100007F:1F90" (tcp) or 32 hex digits then the port (tcp6),
		// address then port, in hex.
		if (len(f[1]) == 13 || len(f[1]) == 37) && strings.HasSuffix(f[1], want) {
			return true
		}
	}
	return false
}
