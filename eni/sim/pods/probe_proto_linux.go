package pods

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// The protocols a probe speaks.
const (
	TCP  = "tcp"
	UDP  = "udp"
	SCTP = "sctp"
)

// ParseProtocols reads "tcp,udp,sctp" (any case, any order).
func ParseProtocols(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch p {
		case TCP, UDP, SCTP:
			out = append(out, p)
		default:
			return nil, fmt.Errorf("protocol %q: want tcp, udp or sctp", p)
		}
	}
	return out, nil
}

// ServeOn starts a server for proto on addr:port inside the pod's network
// namespace: TCP and UDP echo "<addr> <line>"; SCTP answers every INIT to
// port with an ABORT (see DialOn). The socket belongs to that namespace, so
// the server runs on ordinary goroutines.
func ServeOn(podNetNS string, addr netip.Addr, proto string, port int) (io.Closer, error) {
	hostport := net.JoinHostPort(addr.String(), strconv.Itoa(port))
	var c io.Closer
	err := ns.WithNetNSPath(podNetNS, func(ns.NetNS) error {
		switch proto {
		case TCP:
			ln, err := net.Listen(tcpNet(addr), hostport)
			if err != nil {
				return err
			}
			s := &EchoServer{ln: ln}
			go s.loop(addr)
			c = s
		case UDP:
			pc, err := net.ListenPacket("udp4", hostport)
			if err != nil {
				return err
			}
			go udpEcho(pc, addr)
			c = pc
		case SCTP:
			pc, err := net.ListenPacket("ip4:132", addr.String())
			if err != nil {
				return fmt.Errorf("raw sctp socket: %w", err)
			}
			go sctpAbortAll(pc, uint16(port))
			c = pc
		default:
			return fmt.Errorf("protocol %q: want tcp, udp or sctp", proto)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s server on %s in %s: %w", proto, hostport, podNetNS, err)
	}
	return c, nil
}

func udpEcho(pc net.PacketConn, addr netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(append([]byte(addr.String()+" "), buf[:n]...), from)
	}
}

// DialOn checks that a proto exchange from inside fromNetNS reaches
// to:port within timeout. TCP: a line echoed; UDP: a datagram echoed (sent
// again every timeout/4, as datagrams may be lost); SCTP: an INIT answered
// by an INIT-ACK or an ABORT from to. SCTP goes over raw IP sockets
// (protocol 132) with chunks built here, because a kernel without the sctp
// module (this one) has no SCTP sockets: the server side is a raw socket
// that ABORTs every INIT to its port, so the probe proves that the packets
// cross the datapath both ways, which is what NetworkPolicy acts on.
func DialOn(ctx context.Context, fromNetNS string, to netip.Addr, proto string, port int, timeout time.Duration) error {
	switch proto {
	case TCP:
		return dialTCP(ctx, fromNetNS, to, port, timeout)
	case UDP:
		return dialUDP(fromNetNS, to, port, timeout)
	case SCTP:
		return dialSCTP(fromNetNS, to, port, timeout)
	}
	return fmt.Errorf("protocol %q: want tcp, udp or sctp", proto)
}

func dialTCP(ctx context.Context, fromNetNS string, to netip.Addr, port int, timeout time.Duration) error {
	var conn net.Conn
	err := ns.WithNetNSPath(fromNetNS, func(ns.NetNS) error {
		d := net.Dialer{Timeout: timeout}
		var err error
		conn, err = d.DialContext(ctx, tcpNet(to), net.JoinHostPort(to.String(), strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", to, err)
	}
	defer conn.Close()
	return echoLine(conn, to, timeout)
}

// echoLine sends "hello" on conn and checks that to's server echoed it.
func echoLine(conn net.Conn, to netip.Addr, timeout time.Duration) error {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		return fmt.Errorf("send to %s: %w", to, err)
	}
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("reply from %s: %w", to, err)
	}
	if want := to.String() + " hello\n"; !strings.HasPrefix(want, string(buf[:n])) || n == 0 {
		return fmt.Errorf("reply from %s: %q, want %q", to, buf[:n], want)
	}
	return nil
}

func dialUDP(fromNetNS string, to netip.Addr, port int, timeout time.Duration) error {
	var conn net.Conn
	err := ns.WithNetNSPath(fromNetNS, func(ns.NetNS) error {
		var err error
		conn, err = net.Dial("udp4", net.JoinHostPort(to.String(), strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return fmt.Errorf("udp to %s: %w", to, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	want := to.String() + " hello\n"
	buf := make([]byte, 256)
	var last error
	for time.Now().Before(deadline) {
		if _, err := io.WriteString(conn, "hello\n"); err != nil {
			last = err // ECONNREFUSED from an earlier ICMP: try again
		}
		_ = conn.SetReadDeadline(earliest(deadline, time.Now().Add(timeout/4)))
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) == want {
			return nil
		}
		if err != nil {
			last = err
		}
		if errors.Is(err, net.ErrClosed) {
			break
		}
	}
	return fmt.Errorf("udp reply from %s: %w", to, last)
}

// SCTP chunk types (RFC 9260 §3.2).
const (
	sctpInit    = 1
	sctpInitAck = 2
	sctpAbort   = 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sctpPacket builds a common header and one chunk, with its CRC32c.
func sctpPacket(sport, dport uint16, vtag uint32, chunk []byte) []byte {
	b := make([]byte, 12, 12+len(chunk))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], vtag)
	b = append(b, chunk...)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, castagnoli))
	return b
}

// sctpAbortAll answers every INIT to port with an ABORT whose verification
// tag is the INIT's initiate tag (T bit clear), as a closed SCTP port does.
func sctpAbortAll(pc net.PacketConn, port uint16) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		if n < 12+20 || binary.BigEndian.Uint16(p[2:]) != port || p[12] != sctpInit {
			continue
		}
		abort := []byte{sctpAbort, 0, 0, 4}
		_, _ = pc.WriteTo(sctpPacket(port, binary.BigEndian.Uint16(p[0:]), binary.BigEndian.Uint32(p[16:]), abort), from)
	}
}

func dialSCTP(fromNetNS string, to netip.Addr, port int, timeout time.Duration) error {
	var pc net.PacketConn
	err := ns.WithNetNSPath(fromNetNS, func(ns.NetNS) error {
		var err error
		pc, err = net.ListenPacket("ip4:132", "0.0.0.0")
		return err
	})
	if err != nil {
		return fmt.Errorf("raw sctp socket: %w", err)
	}
	defer pc.Close()
	sport := uint16(32768 + rand.IntN(28000))
	tag := rand.Uint32() | 1
	init := make([]byte, 20)
	init[0] = sctpInit
	binary.BigEndian.PutUint16(init[2:], 20)
	binary.BigEndian.PutUint32(init[4:], tag)            // initiate tag
	binary.BigEndian.PutUint32(init[8:], 65535)          // a_rwnd
	binary.BigEndian.PutUint16(init[12:], 1)             // outbound streams
	binary.BigEndian.PutUint16(init[14:], 1)             // inbound streams
	binary.BigEndian.PutUint32(init[16:], rand.Uint32()) // initial TSN
	pkt := sctpPacket(sport, uint16(port), 0, init)
	dst := &net.IPAddr{IP: to.AsSlice()}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	var last error = errors.New("no INIT-ACK or ABORT")
	for time.Now().Before(deadline) {
		if _, err := pc.WriteTo(pkt, dst); err != nil {
			last = err
		}
		_ = pc.SetReadDeadline(earliest(deadline, time.Now().Add(timeout/4)))
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			p := buf[:n]
			ip, ok := from.(*net.IPAddr)
			if !ok || !bytes.Equal(ip.IP.To4(), to.AsSlice()) || n < 16 ||
				binary.BigEndian.Uint16(p[0:]) != uint16(port) || binary.BigEndian.Uint16(p[2:]) != sport ||
				binary.BigEndian.Uint32(p[4:]) != tag {
				continue
			}
			if p[12] == sctpInitAck || p[12] == sctpAbort {
				return nil
			}
		}
	}
	return fmt.Errorf("sctp INIT to %s:%d: %w", to, port, last)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
