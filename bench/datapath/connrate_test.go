package main

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// mustConnrateServer serves on a loopback port until the test ends.
func mustConnrateServer(tb testing.TB) *connrateServer {
	tb.Helper()
	s, err := listenConnrate("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConnrate_Run(t *testing.T) {
	s := mustConnrateServer(t)
	tests := []struct {
		name        string
		concurrency int
	}{
		{"one at a time", 1},
		{"four in flight", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.served.Load()
			r, err := runConnrate(context.Background(), connrateOptions{
				To: s.Addr(), Duration: 300 * time.Millisecond, Concurrency: tt.concurrency, Timeout: 3 * time.Second,
			})
			if err != nil {
				t.Fatalf("runConnrate: %v", err)
			}
			if r.Connections == 0 || r.Errors != 0 {
				t.Fatalf("got %d connections, %d errors (%s); want some and none", r.Connections, r.Errors, r.FirstError)
			}
			if r.Elapsed < 300*time.Millisecond {
				t.Errorf("elapsed %s, want at least the duration", r.Elapsed)
			}
			if want := float64(r.Connections) / r.Elapsed.Seconds(); r.PerSecond != want {
				t.Errorf("perSecond %f, want %f", r.PerSecond, want)
			}
			// Every exchange the client counted, the server answered (it
			// counts after its close, which the client may see first).
			deadline := time.Now().Add(5 * time.Second)
			for s.served.Load()-before < r.Connections && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if served := s.served.Load() - before; served < r.Connections {
				t.Errorf("server answered %d, client completed %d", served, r.Connections)
			}
		})
	}
}

func TestConnrate_Run_NoServer(t *testing.T) {
	// A port that was just free: nothing listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := runConnrate(context.Background(), connrateOptions{To: addr, Duration: 200 * time.Millisecond, Concurrency: 1, Timeout: time.Second})
	if !errors.Is(err, errNoResult) {
		t.Fatalf("err = %v, want errNoResult", err)
	}
	if r.Errors == 0 || r.FirstError == "" {
		t.Errorf("failed connections not counted: %+v", r)
	}
}

func TestConnrate_Run_BadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    connrateOptions
	}{
		{"no concurrency", connrateOptions{To: "127.0.0.1:1", Duration: time.Second, Timeout: time.Second}},
		{"no duration", connrateOptions{To: "127.0.0.1:1", Concurrency: 1, Timeout: time.Second}},
		{"no timeout", connrateOptions{To: "127.0.0.1:1", Concurrency: 1, Duration: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := runConnrate(context.Background(), tt.o); !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want errUsage", err)
			}
		})
	}
}

func TestConnrateServer_ShortRequest(t *testing.T) {
	s := mustConnrateServer(t)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// Half a request, then close: no response, counted as failed.
	if _, err := c.Write(make([]byte, connrateMessage/2)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.failed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("short request not counted as failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.served.Load() != 0 {
		t.Errorf("served %d, want 0", s.served.Load())
	}
}
