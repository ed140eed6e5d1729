package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connrateMessage is the size of the request and of the response: small
// enough that the cost measured is the connection's, not the transfer's.
const connrateMessage = 64

// connrateServer answers each connection with one 64-byte response to one
// 64-byte request, then closes. The server closes first so that TIME_WAIT
// lands on its side: the client's ephemeral ports are then free for reuse
// at once, and a few seconds at thousands of connections per second do not
// run out of them.
type connrateServer struct {
	ln     net.Listener
	wg     sync.WaitGroup
	served atomic.Int64
	failed atomic.Int64
}

// listenConnrate listens on addr ("ip:port") and serves until Close.
func listenConnrate(addr string) (*connrateServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connrate listen %s: %w", addr, err)
	}
	s := &connrateServer{ln: ln}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the address the server listens on.
func (s *connrateServer) Addr() string { return s.ln.Addr().String() }

func (s *connrateServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				slog.Error("connrate accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := answer(c); err != nil {
				s.failed.Add(1)
				return
			}
			s.served.Add(1)
		}()
	}
}

func answer(c net.Conn) error {
	defer c.Close()
	var buf [connrateMessage]byte
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		return err
	}
	_, err := c.Write(buf[:])
	return err
}

// Close stops accepting and waits for connections in progress.
func (s *connrateServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// connrateResult is what one client run reports.
type connrateResult struct {
	Connections int64         `json:"connections"` // completed request/response exchanges
	Errors      int64         `json:"errors"`      // failed connects or exchanges
	Elapsed     time.Duration `json:"elapsed"`
	PerSecond   float64       `json:"perSecond"`
	FirstError  string        `json:"firstError,omitempty"` // what went wrong first, when anything did
}

// connrateOptions configure a client run.
type connrateOptions struct {
	To          string        // server address, ip:port
	Duration    time.Duration // how long to keep opening connections
	Concurrency int           // connections in flight at once
	Timeout     time.Duration // per connection, connect to close
}

// runConnrate opens connections to o.To one after another on each of
// o.Concurrency workers until o.Duration has passed: connect, write 64
// bytes, read 64 bytes, close. A failed connection is counted, not fatal,
// unless nothing ever succeeds.
func runConnrate(ctx context.Context, o connrateOptions) (connrateResult, error) {
	if o.Concurrency < 1 || o.Duration <= 0 || o.Timeout <= 0 {
		return connrateResult{}, fmt.Errorf("%w: connrate needs concurrency >= 1 and positive duration and timeout", errUsage)
	}
	start := time.Now()
	// The end is checked against the clock, not ctx: a dial that fails
	// for the deadline can return before the context's timer has fired on
	// a loaded machine, and would count as a failure.
	end := start.Add(o.Duration)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var done, failed atomic.Int64
	var (
		firstOnce sync.Once
		firstErr  error
	)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: o.Timeout}
			var buf [connrateMessage]byte
			for time.Now().Before(end) && ctx.Err() == nil {
				if err := exchange(ctx, &d, o.To, o.Timeout, buf[:]); err != nil {
					if !time.Now().Before(end) || ctx.Err() != nil {
						return // cut short by the end of the run, not a failure
					}
					failed.Add(1)
					firstOnce.Do(func() { firstErr = err })
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := connrateResult{Connections: done.Load(), Errors: failed.Load(), Elapsed: elapsed}
	r.PerSecond = float64(r.Connections) / elapsed.Seconds()
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	if r.Connections == 0 {
		return r, fmt.Errorf("connrate to %s: no connection completed: %w", o.To, errors.Join(errNoResult, firstErr))
	}
	return r, nil
}

func exchange(ctx context.Context, d *net.Dialer, to string, timeout time.Duration, buf []byte) error {
	c, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(buf); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	// Wait for the server's close before closing: the server then holds
	// the TIME_WAIT, and the client's port is free for the next connection.
	if n, err := c.Read(buf[:1]); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the response: %d bytes, %w (want the server to close)", n, err)
	}
	return nil
}
