package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// ValidMetricsAddress checks a metrics_address: where the node daemon
// serves its Prometheus metrics.
//
//   - "" (the default): a unix socket beside the store,
//     "<dir of store_path>/metrics.sock", mode 0600. No port is opened.
//   - "off": no metrics.
//   - "unix:/path" or "/path": a unix socket at that absolute path, 0600.
//   - "host:port": TCP, for a scraper that cannot reach a socket; the port
//     is open to whoever can reach host, so prefer a node-local address
//     ("127.0.0.1:9190"). An empty host (":9190") listens on every address.
func ValidMetricsAddress(addr string) error {
	switch {
	case addr == "" || addr == "off":
		return nil
	case strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "/"):
		path := strings.TrimPrefix(addr, "unix:")
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return fmt.Errorf("%q: a unix socket needs a clean absolute path", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want \"off\", a unix socket path or host:port: %w", addr, err)
	}
	if strings.ContainsAny(host, "/ ") {
		return fmt.Errorf("%q: host %q is not a host name or address", addr, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q: %w", addr, port, errors.New("want 1 to 65535"))
	}
	return nil
}
