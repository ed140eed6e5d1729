package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAddress(t *testing.T) {
	cases := []struct {
		configured, network, addr string
	}{
		{"", "unix", "/var/lib/veni/metrics.sock"},
		{"off", "", ""},
		{"unix:/run/veni/m.sock", "unix", "/run/veni/m.sock"},
		{"/run/veni/m.sock", "unix", "/run/veni/m.sock"},
		{"127.0.0.1:9190", "tcp", "127.0.0.1:9190"},
	}
	for _, tc := range cases {
		network, addr := Address(tc.configured, "/var/lib/veni/veni.db")
		if network != tc.network || addr != tc.addr {
			t.Errorf("Address(%q) = %q %q, want %q %q", tc.configured, network, addr, tc.network, tc.addr)
		}
	}
}

// unixClient is an HTTP client that dials the unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// serve starts e.Serve on l and returns a stop that waits for it.
func serve(t *testing.T, e *Exporter, l net.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, l) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// Ensure the default socket is 0600, serves the metrics, and is gone when
// serving stops.
func TestListen_UnixSocket0600(t *testing.T) {
	db := mustStore(t, 0)
	mustPool(t, db)
	e, _ := newTestExporter(t, db)
	network, path := Address("", db.Path)
	l, err := Listen(network, path)
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, e, l)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %s, want a socket with 0600", path, fi.Mode())
	}
	resp, err := unixClient(path).Get("http://veni/metrics")
	if err != nil {
		t.Fatal(err)
	}
	fams := parse(t, resp.Body)
	resp.Body.Close()
	if got := value(t, fams, "veni_pool_idle_ips", ""); got != 2 {
		t.Errorf("veni_pool_idle_ips over the socket = %v, want 2", got)
	}
	stop()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

// Ensure a stale socket (a daemon killed with -9) is replaced, and any
// other file in the way is left alone and refused.
func TestListen_StaleSocketAndFileInTheWay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := Listen("unix", path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()

	if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix", path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("the file in the way was changed")
	}
}

// Ensure a path too long for a socket is refused with a hint, not
// truncated by the kernel's rules.
func TestListen_PathTooLong(t *testing.T) {
	path := "/" + strings.Repeat("d", 120) + "/metrics.sock"
	if _, err := Listen("unix", path); err == nil || !strings.Contains(err.Error(), "metrics_address") {
		t.Errorf("Listen(%d-byte path) = %v, want an error naming metrics_address", len(path), err)
	}
}
