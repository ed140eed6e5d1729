package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/veni-cni/veni/metrics"
)

// SocketName is the default metrics socket's name, beside the store file:
// "<store dir>/metrics.sock" (/var/lib/veni/metrics.sock on a node with the
// default store). Every node, simulated ones included, has its own store
// directory, so two daemons never share a socket.
const SocketName = "metrics.sock"

// Off is the metrics_address that serves no metrics at all.
const Off = "off"

// maxSocketPath is the longest path a unix socket can be bound to
// (sizeof(sun_path) minus the terminating NUL).
const maxSocketPath = 107

// Address says where the daemon serves metrics: the configured
// metrics_address, or by default a unix socket beside the store at
// storePath. It returns "unix" or "tcp" and the path or host:port; network
// is empty when metrics are off.
func Address(configured, storePath string) (network, addr string) {
	switch {
	case configured == Off:
		return "", ""
	case configured == "":
		return "unix", filepath.Join(filepath.Dir(storePath), SocketName)
	case strings.HasPrefix(configured, "unix:"):
		return "unix", strings.TrimPrefix(configured, "unix:")
	case strings.HasPrefix(configured, "/"):
		return "unix", configured
	}
	return "tcp", configured
}

// Listen opens where metrics are served. A unix socket is created mode
// 0600 (only root scrapes it; a scraper reaches it through a socat or
// kube-rbac-proxy sidecar, as Terway's debug socket), replacing a stale
// socket but never another kind of file. A TCP address is opened only
// because the configuration names it.
func Listen(network, addr string) (net.Listener, error) {
	if network != "unix" {
		return metrics.Listen(addr)
	}
	if len(addr) > maxSocketPath {
		return nil, fmt.Errorf("metrics socket %s: path longer than %d bytes (set metrics_address)", addr, maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(addr), 0o700); err != nil {
		return nil, fmt.Errorf("metrics socket %s: %w", addr, err)
	}
	switch fi, err := os.Lstat(addr); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("metrics socket %s: %w", addr, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("metrics socket %s: a %s is in the way, not a socket", addr, fi.Mode().Type())
	default:
		if err := os.Remove(addr); err != nil {
			return nil, fmt.Errorf("metrics socket %s: remove stale socket: %w", addr, err)
		}
	}
	l, err := net.Listen("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics socket %s: %w", addr, err)
	}
	// The socket is born with 0777 minus the umask; connecting needs write
	// permission, so with any usual umask (022) only root can connect
	// before this narrows it.
	if err := os.Chmod(addr, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("metrics socket %s: %w", addr, err)
	}
	return l, nil
}

// Serve serves the exporter's metrics on l until ctx ends (metrics.Serve:
// "/metrics" and "/", graceful shutdown). A unix socket's file is removed
// when it returns.
func (e *Exporter) Serve(ctx context.Context, l net.Listener) error {
	return metrics.Serve(ctx, l, e.Handler())
}
