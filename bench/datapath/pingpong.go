package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// The TCP request/response latency of IPv6 rows: sockperf (3.7, Debian
// 12) takes IPv4 addresses only. One connection; the client sends
// connrateMessage bytes and waits for as many back, over and over, and
// reports the round trips' percentiles, as sockperf ping-pong --full-rtt
// does. IPv4 rows keep sockperf, so an eBPF/plain ratio compares one tool
// with itself; absolute IPv6 and IPv4 latencies come from different tools.

// pingpongServer echoes connrateMessage-byte messages on each connection.
type pingpongServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func listenPingpong(addr string) (*pingpongServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pingpong listen %s: %w", addr, err)
	}
	s := &pingpongServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					slog.Error("pingpong accept", "err", err)
				}
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				var buf [connrateMessage]byte
				for {
					if _, err := io.ReadFull(c, buf[:]); err != nil {
						return
					}
					if _, err := c.Write(buf[:]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s, nil
}

// Close stops accepting and waits for the connections to end.
func (s *pingpongServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// runPingpong exchanges messages with to for d on one connection and
// returns the round trips' p50 and p99 in µs.
func runPingpong(ctx context.Context, to string, d time.Duration) (latency, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", to)
	if err != nil {
		return latency{}, fmt.Errorf("pingpong dial %s: %w", to, err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	end := time.Now().Add(d)
	_ = c.SetDeadline(end.Add(5 * time.Second))
	var buf [connrateMessage]byte
	var rtts []float64
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		if _, err := c.Write(buf[:]); err != nil {
			return latency{}, fmt.Errorf("pingpong send: %w", err)
		}
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return latency{}, fmt.Errorf("pingpong receive: %w", err)
		}
		rtts = append(rtts, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	if len(rtts) == 0 {
		return latency{}, fmt.Errorf("pingpong to %s: %w", to, errNoResult)
	}
	return percentiles(rtts), nil
}

// percentiles returns the p50 and p99 of v (nearest rank), sorting it.
func percentiles(v []float64) latency {
	slices.Sort(v)
	at := func(p float64) float64 {
		i := int(p*float64(len(v))+0.5) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return latency{P50: at(0.50), P99: at(0.99)}
}
