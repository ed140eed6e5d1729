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

// Ensure the control endpoint runs OpenAPI actions for the operator (veni
// sim sg): the model's answers and errors, the schema's refusals, and
// none of the account's quota.
func TestCloud_ControlHandler_API(t *testing.T) {
	c, _ := mustCloud(t, nil)
	h := c.ControlHandler()
	post := func(body string) *httptest.ResponseRecorder {
		return controlPost(t, h, body, func(r *http.Request) { r.URL.Path = "/v1/api" })
	}
	w := post(`{"action":"CreateSecurityGroup","params":{"VpcId":"vpc-sim-main","SecurityGroupType":"enterprise"}}`)
	var created struct{ SecurityGroupId string }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &created) != nil || !strings.HasPrefix(created.SecurityGroupId, "sg-") {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	w = post(`{"action":"AuthorizeSecurityGroup","params":{"SecurityGroupId":"` + created.SecurityGroupId +
		`","IpProtocol":"tcp","PortRange":"8080/8080","SourceGroupId":"sg-sim-default"}}`)
	if w.Code != http.StatusOK {
		t.Fatalf("authorize: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"action":"AuthorizeSecurityGroup","params":{"SecurityGroupId":"sg-nope","IpProtocol":"tcp","PortRange":"1/2","SourceCidrIp":"10.0.0.0/8"}}`, CodeSecurityGroupNotFound},
		{`{"action":"CreateSecurityGroup","params":{"Color":"blue"}}`, CodeInvalidParameter},
		{`{"action":"RunInstances"}`, "no such action"},
	} {
		if w := post(tc.body); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %s, want 400 with %s", tc.body, w.Code, w.Body, tc.want)
		}
	}
	var attr struct {
		Permissions struct {
			Permission []struct{ PortRange, SourceGroupId string }
		}
	}
	w = post(`{"action":"DescribeSecurityGroupAttribute","params":{"SecurityGroupId":"` + created.SecurityGroupId + `"}}`)
	if json.Unmarshal(w.Body.Bytes(), &attr) != nil || len(attr.Permissions.Permission) != 1 ||
		attr.Permissions.Permission[0].SourceGroupId != "sg-sim-default" {
		t.Errorf("describe attribute: %s", w.Body)
	}
	if n := c.Snapshot().Calls["CreateSecurityGroup"].Calls; n != 0 {
		t.Errorf("operator calls counted as the account's: %d", n)
	}
}
