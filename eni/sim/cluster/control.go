package cluster

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/veni-cni/veni/eni/sim"
)

// The control endpoint listens on the host's loopback for "veni sim"
// commands. Loopback alone does not make a caller local: a web page in the
// user's browser can POST to 127.0.0.1 (a "simple" cross-site request needs
// no preflight) and a DNS-rebinding page can even read the answers. So
// every request must
//   - name a loopback Host (a rebound name such as evil.example is refused),
//   - carry no Origin, or a loopback one ("null", sent by sandboxed and
//     file:// pages, is refused): browsers always send Origin on POST,
//   - carry the sim's token (Authorization: Bearer, from control.token,
//     0600 in the sim directory), which no page can read, and
//   - when it changes something, be Content-Type: application/json, which
//     a cross-site form cannot send without a preflight that fails.

// Control endpoint paths.
const (
	pathState  = "/v1/state"
	pathFaults = "/v1/faults"
	pathCloud  = "/v1/cloud"
	pathQuotas = "/v1/quotas"
	pathAPI    = "/v1/api"
)

// maxControlBody bounds a request body.
const maxControlBody = 1 << 20

// Live is the control endpoint's GET /v1/state answer: the cloud as it is
// now and the nodes with their supervised daemons.
type Live struct {
	Cloud sim.Snapshot `json:"cloud"`
	Nodes []NodeStatus `json:"nodes"`
}

// NodeStatus is one node, whether it is ready for pods, its daemon (nil
// when the sim runs without daemons) and, when asked for, its health.
type NodeStatus struct {
	Node
	Ready  bool           `json:"ready"` // its CNI conflist exists: the runtime may send it pods
	Daemon *ProcessStatus `json:"daemon,omitempty"`
	Health *NodeHealth    `json:"health,omitempty"`
}

// control serves the endpoint for one server.
type control struct {
	cloud *sim.Cloud
	nodes func(ctx context.Context, health bool) []NodeStatus
	log   *slog.Logger
}

// newControlHandler returns the endpoint behind guard: the sim's state,
// and the cloud's own API (sim.Cloud.ControlHandler) for /v1/faults,
// /v1/cloud, /v1/quotas and /v1/api.
func newControlHandler(token string, c *control) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathState, c.handleState)
	cloud := c.cloud.ControlHandler()
	mux.Handle(pathFaults, cloud)
	mux.Handle(pathCloud, cloud)
	mux.Handle(pathQuotas, cloud)
	mux.Handle(pathAPI, cloud)
	return guard(token, mux)
}

// handleState answers Live; ?health=1 also runs "veni status" in every node.
func (c *control) handleState(w http.ResponseWriter, r *http.Request) {
	health := r.URL.Query().Get("health") == "1"
	nodes := c.nodes(r.Context(), health) // slow with health: the cloud's counters after it
	writeControlJSON(w, Live{Cloud: c.cloud.Snapshot(), Nodes: nodes})
}

func writeControlJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// guard refuses what is not a local "veni sim" command (see the comment at
// the top of this file) before next sees it.
func guard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkLocal(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if !tokenMatches(r.Header.Get("Authorization"), token) {
			http.Error(w, "missing or wrong control token (veni sim commands send the one in the sim directory's "+TokenFile+")", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				http.Error(w, "content type must be application/json", http.StatusUnsupportedMediaType)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
		next.ServeHTTP(w, r)
	})
}

// checkLocal checks the Host and Origin headers name loopback.
func checkLocal(r *http.Request) error {
	if !loopbackHost(r.Host) {
		return fmt.Errorf("host %q is not a loopback address", r.Host)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "none" && site != "same-origin" {
		return fmt.Errorf("a %s request from a browser", site)
	}
	for _, o := range r.Header.Values("Origin") {
		u, err := url.Parse(o)
		if o == "null" || err != nil || u.Host == "" || !loopbackHost(u.Host) {
			return fmt.Errorf("origin %q is not local: browsers may not drive the sim", o)
		}
	}
	return nil
}

// loopbackHost reports whether a Host header value (host or host:port)
// names loopback: localhost or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func tokenMatches(header, token string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
