package pods

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ProbePort is the TCP port of the echo server Serve starts in a pod.
const ProbePort = 7777

// EchoServer answers each line it reads with "<pod address> <line>" on one
// pod's address.
type EchoServer struct {
	ln net.Listener
}

// tcpNet is "tcp4" or "tcp6", by a's family: a dual-stack pod is probed
// on each of its addresses.
func tcpNet(a netip.Addr) string {
	if a.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// Serve starts an echo server listening on addr:ProbePort inside the pod's
// network namespace. The socket belongs to that namespace; accepting on it
// from any thread is fine, so the server runs on ordinary goroutines.
func Serve(podNetNS string, addr netip.Addr) (*EchoServer, error) {
	var ln net.Listener
	err := ns.WithNetNSPath(podNetNS, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen(tcpNet(addr), net.JoinHostPort(addr.String(), strconv.Itoa(ProbePort)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server on %s in %s: %w", addr, podNetNS, err)
	}
	s := &EchoServer{ln: ln}
	go s.loop(addr)
	return s, nil
}

func (s *EchoServer) loop(addr netip.Addr) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", addr, line)
		}()
	}
}

// Close stops the server.
func (s *EchoServer) Close() error { return s.ln.Close() }

// Dial connects from inside the pod namespace fromNetNS to the echo server
// at to, sends one line and checks the answer names to: proof that a TCP
// exchange crossed whatever lies between the two pods.
func Dial(ctx context.Context, fromNetNS string, to netip.Addr, timeout time.Duration) error {
	var conn net.Conn
	err := ns.WithNetNSPath(fromNetNS, func(ns.NetNS) error {
		d := net.Dialer{Timeout: timeout}
		var err error
		// The socket is created (and so bound to this namespace) before
		// DialContext returns; it may finish on another thread.
		conn, err = d.DialContext(ctx, tcpNet(to), net.JoinHostPort(to.String(), strconv.Itoa(ProbePort)))
		return err
	})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", to, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		return fmt.Errorf("send to %s: %w", to, err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reply from %s: %w", to, err)
	}
	if want := to.String() + " hello\n"; reply != want {
		return fmt.Errorf("reply from %s: %q, want %q", to, reply, want)
	}
	return nil
}
