package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func controlPost(tb testing.TB, h http.Handler, body string, mutate func(*http.Request)) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4242/v1/faults", strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:50000"
	r.Header.Set("Content-Type", "application/json")
	if mutate != nil {
		mutate(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestCloud_ControlHandler_ApplyFault(t *testing.T) {
	c, _ := mustCloud(t, nil)
	h := c.ControlHandler()
	cases := []struct {
		name   string
		body   string
		status int
		check  func(FaultState) bool
	}{
		{"action fault", `{"action":"AttachNetworkInterface","throttleRate":0.3,"latency":1000000}`, 200,
			func(s FaultState) bool {
				f := s.Actions["AttachNetworkInterface"]
				return f.ThrottleRate == 0.3 && f.Latency == time.Millisecond
			}},
		{"5xx on every action", `{"errorRate":0.05,"errorCode":"ServiceUnavailable"}`, 200,
			func(s FaultState) bool { return s.Actions[""].ErrorRate == 0.05 }},
		{"attach never", `{"attach":{"never":true}}`, 200, func(s FaultState) bool { return s.Attach.Never }},
		{"attach delay", `{"attach":{"delay":10000000000}}`, 200, func(s FaultState) bool { return s.Attach.Delay == 10*time.Second && !s.Attach.Never }},
		{"describe lag", `{"describeLag":2000000000}`, 200, func(s FaultState) bool { return s.DescribeLag == 2*time.Second }},
		{"vswitch cap", `{"vswitchId":"vsw-sim-a","vswitchMaxMore":5}`, 200,
			func(s FaultState) bool { return s.VSwitches["vsw-sim-a"] == VSwitchFaultState{MaxMore: 5, Left: 5} }},
		{"clear one vswitch", `{"vswitchId":"vsw-sim-a","clear":true}`, 200, func(s FaultState) bool { return len(s.VSwitches) == 0 }},
		{"clear one action", `{"action":"AttachNetworkInterface","clear":true}`, 200,
			func(s FaultState) bool {
				_, ok := s.Actions["AttachNetworkInterface"]
				return !ok && s.Actions[""].ErrorRate > 0
			}},
		{"clear all", `{"clear":true}`, 200,
			func(s FaultState) bool { return len(s.Actions) == 0 && s.DescribeLag == 0 && s.Attach == AttachFault{} }},
		{"bad rate", `{"throttleRate":2}`, 400, nil},
		{"bad code", `{"errorRate":1,"errorCode":"Throttling"}`, 400, nil},
		{"unknown vswitch", `{"vswitchId":"vsw-nope","vswitchMaxMore":1}`, 400, nil},
		{"cap without vswitch", `{"vswitchMaxMore":1}`, 400, nil},
		{"unknown field", `{"thrNOTtle":1}`, 400, nil},
		{"not json", `throttle=1`, 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := controlPost(t, h, tc.body, nil)
			if w.Code != tc.status {
				t.Fatalf("http %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if tc.check == nil {
				return
			}
			var got FaultState
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if !tc.check(got) || got.Injected == nil {
				t.Fatalf("fault state after %s: %+v", tc.body, got)
			}
		})
	}
}

func TestCloud_ControlHandler_Get(t *testing.T) {
	c, _ := mustCloud(t, nil)
	mustInstance(t, c, InstanceSpec{})
	srv := httptest.NewServer(c.ControlHandler())
	t.Cleanup(srv.Close)
	c.SetFault("", Fault{Latency: time.Millisecond})
	for _, path := range []string{"/v1/faults", "/v1/cloud"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(buf.String(), `"latency":1000000`) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, buf.String())
		}
	}
	resp, err := http.Post(srv.URL+"/v1/cloud", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/cloud: %d", resp.StatusCode)
	}
}
