package pods

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// UDPStream sends numbered datagrams from a pod from the first instant its
// namespace can route to the destination: the test of a pod's first
// packet (NetworkPolicy must hold from it on).
type UDPStream struct {
	done  chan struct{}
	First time.Time // when datagram 0 left; zero if none did
	Sent  int
	Err   error
}

// StartUDPStream starts, on its own thread in netnsPath, a loop that tries
// to connect a UDP socket to to every 100µs until the namespace has a
// route (the CNI ADD under way), then sends datagrams numbered 0, 1, ...
// (a big-endian uint32 each) every millisecond for d. Wait returns once it
// is done.
func StartUDPStream(netnsPath string, to netip.AddrPort, d time.Duration) *UDPStream {
	s := &UDPStream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		fd := -1
		sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
		giveUp := time.Now().Add(30 * time.Second)
		err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
			for time.Now().Before(giveUp) {
				f, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				if err := unix.Connect(f, sa); err == nil {
					var b [4]byte
					if _, err := unix.Write(f, b[:]); err == nil {
						s.First, s.Sent, fd = time.Now(), 1, f
						return nil
					}
				}
				unix.Close(f)
				time.Sleep(100 * time.Microsecond)
			}
			return errors.New("no route within 30s")
		})
		if err != nil {
			s.Err = fmt.Errorf("udp stream to %s: %w", to, err)
			return
		}
		defer unix.Close(fd)
		end := s.First.Add(d)
		for time.Now().Before(end) {
			time.Sleep(time.Millisecond)
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(s.Sent))
			if _, err := unix.Write(fd, b[:]); err == nil {
				s.Sent++
			}
		}
	}()
	return s
}

// Wait waits for the stream to end.
func (s *UDPStream) Wait() { <-s.done }
