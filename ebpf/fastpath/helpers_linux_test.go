package fastpath

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/veni-cni/veni/internal/testutil"
)

// testPinRoot keeps test pins apart from a running veni's.
const testPinRoot = DefaultPinRoot + "-test"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// mustPinDir returns a fresh per-node pin dir on bpffs and checks at cleanup
// that Teardown leaves nothing behind.
func mustPinDir(tb testing.TB) string {
	tb.Helper()
	testutil.RequireRoot(tb)
	root := filepath.Join(testPinRoot, fmt.Sprintf("%d-%s", os.Getpid(), randHex(4)))
	dir := NodePinDir(root, "node")
	tb.Cleanup(func() {
		if err := Teardown(dir); err != nil {
			tb.Errorf("teardown %s: %v", dir, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			tb.Errorf("pin dir %s survived teardown (stat: %v)", dir, err)
		}
		_ = os.Remove(root)
		_ = os.Remove(testPinRoot) // only when no other test run uses it
	})
	return dir
}

// mustOpen opens a Datapath, closed at cleanup (pins stay for mustPinDir's
// teardown).
func mustOpen(tb testing.TB, opts Options) *Datapath {
	tb.Helper()
	d, err := Open(opts)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return d
}

// inNetNS runs fn on a locked OS thread inside ns. When the thread cannot
// be moved back it stays locked, so Go discards it with the goroutine.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w (terminating OS thread)", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func mustInNetNS(tb testing.TB, ns netns.NsHandle, fn func() error) {
	tb.Helper()
	if err := inNetNS(ns, fn); err != nil {
		tb.Fatal(err)
	}
}

// network is proto ("udp", "tcp") for a's family: "udp4", "udp6".
func network(proto string, a netip.Addr) string {
	if a.Is4() {
		return proto + "4"
	}
	return proto + "6"
}

// mustSysctl writes a sysctl of ns ("net/ipv4/ip_forward").
func mustSysctl(tb testing.TB, ns netns.NsHandle, key, value string) {
	tb.Helper()
	mustInNetNS(tb, ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// mustServeUDPEcho echoes datagrams on addr inside ns until cleanup.
func mustServeUDPEcho(tb testing.TB, ns netns.NsHandle, addr netip.AddrPort) {
	tb.Helper()
	var pc net.PacketConn
	mustInNetNS(tb, ns, func() (err error) {
		pc, err = net.ListenPacket(network("udp", addr.Addr()), addr.String())
		return err
	})
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// mustServeTCPEcho echoes TCP connections on addr inside ns until cleanup.
func mustServeTCPEcho(tb testing.TB, ns netns.NsHandle, addr netip.AddrPort) {
	tb.Helper()
	mustServeTCP(tb, ns, addr, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(c, c)
	})
}

// mustServeTCPSink reads TCP connections on addr inside ns to their end.
func mustServeTCPSink(tb testing.TB, ns netns.NsHandle, addr netip.AddrPort) {
	tb.Helper()
	mustServeTCP(tb, ns, addr, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// mustServeTCP listens on addr inside ns (the socket belongs to ns, so the
// accept loop may run anywhere) and hands each connection to serve, until
// the test ends.
func mustServeTCP(tb testing.TB, ns netns.NsHandle, addr netip.AddrPort, serve func(net.Conn)) {
	tb.Helper()
	var ln net.Listener
	mustInNetNS(tb, ns, func() (err error) {
		ln, err = net.Listen(network("tcp", addr.Addr()), addr.String())
		return err
	})
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
}

// exchange sends a message from ns to dst over network ("udp4", "tcp4")
// and checks it comes back. The socket is connected, so a reply from any
// other address than dst (a NAT not undone) never reaches it. UDP is tried
// a few times: the first datagram may die while ARP resolves.
func exchange(ns netns.NsHandle, network string, dst netip.AddrPort) error {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if last = exchangeOnce(ns, network, dst); last == nil {
			return nil
		}
	}
	return last
}

func exchangeOnce(ns netns.NsHandle, network string, dst netip.AddrPort) error {
	var c net.Conn
	err := inNetNS(ns, func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err = d.Dial(network, dst.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, dst, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	msg := "veni-" + randHex(8)
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("send to %s: %w", dst, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("echo from %s: %w", dst, err)
	}
	if got := string(buf); got != msg {
		return fmt.Errorf("echo from %s: got %q, want %q", dst, got, msg)
	}
	return nil
}

func mustExchange(tb testing.TB, ns netns.NsHandle, network string, dst netip.AddrPort) {
	tb.Helper()
	if err := exchange(ns, network, dst); err != nil {
		tb.Fatal(err)
	}
}

// pinsUnder lists every file under dir (pins; directories excluded).
func pinsUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, strings.TrimPrefix(path, dir+"/"))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// mustSend connects from ns to dst (from localPort when not 0), writes n
// bytes and closes.
func mustSend(tb testing.TB, ns netns.NsHandle, dst netip.AddrPort, localPort, n int) {
	tb.Helper()
	var c net.Conn
	mustInNetNS(tb, ns, func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		if localPort != 0 {
			d.LocalAddr = &net.TCPAddr{Port: localPort}
		}
		c, err = d.Dial(network("tcp", dst.Addr()), dst.String())
		return err
	})
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Write(make([]byte, n)); err != nil {
		tb.Fatalf("send %d bytes to %s: %v", n, dst, err)
	}
}
