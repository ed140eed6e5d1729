package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

const testToken = "0123456789abcdef"

// mustControl returns the control handler of a cloud without packets, whose
// nodes answer nodes.
func mustControl(tb testing.TB, nodes []NodeStatus) (http.Handler, *sim.Cloud) {
	tb.Helper()
	cloud, err := sim.New(sim.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cloud.Close() })
	c := &control{cloud: cloud, log: slog.New(slog.DiscardHandler),
		nodes: func(context.Context, bool) []NodeStatus { return nodes }}
	return newControlHandler(testToken, c), cloud
}

// Ensure the control endpoint refuses whatever is not a local veni sim
// command: a browser's cross-site POST, a DNS-rebound page, a caller
// without the token, a body that is not JSON.
func TestControl_Guard_Refusals(t *testing.T) {
	const fault = `{"action":"AssignPrivateIpAddresses","throttleRate":1}`
	cases := []struct {
		name     string
		method   string
		host     string
		headers  map[string]string
		body     string
		wantCode int
		wantMsg  string
	}{
		{"good post", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json"}, fault, http.StatusOK, "throttleRate"},
		{"good get", "GET", "127.0.0.1:4000", nil, "", http.StatusOK, "vswitches"},
		{"localhost and loopback origin", "POST", "localhost:4000", map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": "http://127.0.0.1:4000"}, fault, http.StatusOK, ""},
		{"ipv6 loopback", "GET", "[::1]:4000", nil, "", http.StatusOK, ""},
		{"cross-site form post", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example"}, fault, http.StatusForbidden, "origin"},
		{"cross-site json post", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, fault, http.StatusForbidden, "origin"},
		{"null origin", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json", "Origin": "null"}, fault, http.StatusForbidden, "origin"},
		{"origin naming loopback in its path only", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example/127.0.0.1"}, fault, http.StatusForbidden, "origin"},
		{"dns rebinding host", "GET", "evil.example:4000", nil, "", http.StatusForbidden, "host"},
		{"browser fetch metadata", "GET", "127.0.0.1:4000", map[string]string{"Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden, "browser"},
		{"private address host", "GET", "192.168.1.2:4000", nil, "", http.StatusForbidden, "host"},
		{"no content type", "POST", "127.0.0.1:4000", nil, fault, http.StatusUnsupportedMediaType, "application/json"},
		{"form content type", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, fault, http.StatusUnsupportedMediaType, "application/json"},
		{"no token", "GET", "127.0.0.1:4000", map[string]string{"Authorization": ""}, "", http.StatusUnauthorized, TokenFile},
		{"wrong token", "POST", "127.0.0.1:4000", map[string]string{"Authorization": "Bearer nope", "Content-Type": "application/json"}, fault, http.StatusUnauthorized, "token"},
		{"token without bearer", "GET", "127.0.0.1:4000", map[string]string{"Authorization": testToken}, "", http.StatusUnauthorized, "token"},
		{"bad fault", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json"}, `{"throttleRate":2}`, http.StatusBadRequest, "within 0..1"},
		{"body too large", "POST", "127.0.0.1:4000", map[string]string{"Content-Type": "application/json"}, `{"action":"` + strings.Repeat("x", maxControlBody) + `"}`, http.StatusBadRequest, "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := mustControl(t, nil)
			path := pathState
			if tc.method == "POST" {
				path = pathFaults
			}
			r := httptest.NewRequest(tc.method, path, strings.NewReader(tc.body))
			r.Host = tc.host
			r.Header.Set("Authorization", "Bearer "+testToken)
			for k, v := range tc.headers {
				if v == "" {
					r.Header.Del(k)
					continue
				}
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantMsg) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", tc.method, path, w.Code, w.Body.String(), tc.wantCode, tc.wantMsg)
			}
		})
	}
}

// Ensure a refused fault never reaches the cloud, and an accepted one does.
func TestControl_Guard_RefusedFaultNotApplied(t *testing.T) {
	h, cloud := mustControl(t, nil)
	api := httptest.NewServer(cloud.APIHandler())
	defer api.Close()
	throttled := func() int {
		t.Helper()
		resp, err := http.Get(api.URL + "/?Action=DescribeVSwitches&Version=2014-05-26&Format=JSON")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return cloud.Snapshot().Calls["DescribeVSwitches"].Throttled
	}
	post := func(contentType, origin string) int {
		r := httptest.NewRequest("POST", pathFaults, strings.NewReader(`{"throttleRate":1}`))
		r.Host = "127.0.0.1:4000"
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Content-Type", contentType)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := post("text/plain", "https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", code)
	}
	if n := throttled(); n != 0 {
		t.Fatalf("a refused request set a fault: %d calls throttled", n)
	}
	if code := post("application/json", ""); code != http.StatusOK {
		t.Fatalf("veni sim's post: %d", code)
	}
	if n := throttled(); n != 1 {
		t.Fatalf("an accepted fault was not applied: %d calls throttled, want 1", n)
	}
}

// Ensure the typed client talks to the endpoint with its token, and that a
// refusal comes back as a ControlError.
func TestClient_RoundTrip(t *testing.T) {
	nodes := []NodeStatus{{Node: Node{Name: "node-1", InstanceID: "i-aaa"}, Daemon: &ProcessStatus{Name: "node-1/daemon", PID: 77, Alive: true, Restarts: 2}}}
	h, _ := mustControl(t, nodes)
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	token, err := newToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if token == testToken {
		t.Fatal("newToken returned the test's constant")
	}
	// The server under test knows testToken; the directory holds another.
	st := State{Dir: dir, ControlEndpoint: srv.URL}
	c, err := NewClient(st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Live(ctx, false)
	var ce *ControlError
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized || !errors.Is(err, ErrControl) {
		t.Fatalf("Live with a wrong token: %v, want a 401 ControlError", err)
	}
	if err := writeFileAtomic(dir+"/"+TokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = NewClient(st); err != nil {
		t.Fatal(err)
	}
	live, err := c.Live(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(live.Nodes) != 1 || live.Nodes[0].Name != "node-1" || live.Nodes[0].Daemon.Restarts != 2 || len(live.Cloud.VSwitches) != 2 {
		t.Fatalf("live = %+v", live)
	}
	got, err := c.SetFault(ctx, sim.FaultRequest{Action: "AttachNetworkInterface", Latency: time.Second})
	if err != nil || got.Actions["AttachNetworkInterface"].Latency != time.Second {
		t.Fatalf("SetFault = %+v, %v", got, err)
	}
	if _, err := c.SetFault(ctx, sim.FaultRequest{ErrorRate: -1}); err == nil {
		t.Fatal("SetFault with a negative rate succeeded")
	}
}

// Ensure the token file is 0600 and fresh each time.
func TestNewToken_Mode(t *testing.T) {
	dir := t.TempDir()
	a, err := newToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a == b || len(a) != 64 {
		t.Fatalf("tokens %q and %q: want two different 64-hex tokens", a, b)
	}
	got, err := readToken(dir)
	if err != nil || got != b {
		t.Fatalf("readToken = %q, %v; want %q", got, err, b)
	}
	if fi, err := os.Stat(filepath.Join(dir, TokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// Ensure "veni sim fault" prints each kind of fault in force, and what was
// injected, the way the fault campaign reads it.
func TestPrintFaults(t *testing.T) {
	cloud, err := sim.New(sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cloud.Close() })
	lag, free := 2*time.Second, 5
	steps := []struct {
		req  sim.FaultRequest
		want string
	}{
		{sim.FaultRequest{Attach: &sim.AttachFault{Never: true}}, "attach: held in Attaching until cleared"},
		{sim.FaultRequest{DescribeLag: &lag}, "describe: lags 2s behind writes"},
		{sim.FaultRequest{VSwitchID: "vsw-sim-a", VSwitchMaxMore: &free}, "vswitch vsw-sim-a: at most 5 more addresses (5 left)"},
		{sim.FaultRequest{ErrorRate: 0.05, ErrorCode: sim.CodeServiceUnavailable}, "every action: ServiceUnavailable 0.05"},
		{sim.FaultRequest{}, "injected: none"},
		{sim.FaultRequest{Clear: true}, "faults in force:\n  none"},
	}
	for _, s := range steps {
		if err := cloud.ApplyFault(s.req); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		printFaults(&out, cloud.Faults())
		if !strings.Contains(out.String(), s.want) {
			t.Fatalf("%+v printed %q, want %q", s.req, out.String(), s.want)
		}
	}
}
