package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func TestCloud_API_Authentication(t *testing.T) {
	c, _ := mustCloud(t, nil)
	host := mustServeAPI(t, c)
	tests := []struct {
		name, key, secret, code string
		status                  int
	}{
		{"valid", testKeyID, testSecret, "", 200},
		{"unknown key", "LTAIunknown", testSecret, CodeInvalidAccessKeyID, 404},
		{"wrong secret", testKeyID, "not-the-secret", CodeSignatureDoesNotMatch, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := mustECS(t, host, tt.key, tt.secret)
			_, err := client.DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest())
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code, tt.status)
		})
	}
	t.Run("sdk signs characters that need escaping", func(t *testing.T) {
		req := ecs.CreateCreateNetworkInterfaceRequest()
		req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
		req.Description = "a b*c~d/é+&=%"
		resp, err := mustECS(t, host, testKeyID, testSecret).CreateNetworkInterface(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Description != req.Description {
			t.Fatalf("description %q", resp.Description)
		}
	})
	t.Run("sdk recognises the secret as wrong", func(t *testing.T) {
		// The SDK compares our string to sign with its own; equal strings
		// mean "wrong secret", not "signing bug".
		_, err := mustECS(t, host, testKeyID, "wrong").DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest())
		if err == nil || !strings.Contains(err.Error(), "InvalidAccessKeySecret") {
			t.Fatalf("err %v", err)
		}
	})
}

// rawCall sends a request hand-signed with the test key and decodes the
// answer.
func rawCall(t *testing.T, host, method string, params url.Values) (int, map[string]any) {
	t.Helper()
	return rawCallSigned(t, host, method, params, testSecret)
}

// rawCallSigned sends a request signed with secret and decodes the answer.
func rawCallSigned(t *testing.T, host, method string, params url.Values, secret string) (int, map[string]any) {
	t.Helper()
	params.Del("Signature")
	params.Set("Signature", Sign(StringToSign(method, params), secret))
	var resp *http.Response
	var err error
	if method == http.MethodGet {
		resp, err = http.Get("http://" + host + "/?" + params.Encode())
	} else {
		resp, err = http.PostForm("http://"+host+"/", params)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func signedParams(action, nonce string) url.Values {
	return url.Values{
		"Action":           {action},
		"Version":          {versionECS},
		"Format":           {"JSON"},
		"AccessKeyId":      {testKeyID},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureVersion": {"1.0"},
		"SignatureNonce":   {nonce},
		"Timestamp":        {time.Now().UTC().Format("2006-01-02T15:04:05Z")},
		"RegionId":         {"cn-hangzhou"},
	}
}

func TestCloud_API_RawRequests(t *testing.T) {
	c, _ := mustCloud(t, nil)
	host := mustServeAPI(t, c)
	tests := []struct {
		name   string
		method string
		params url.Values
		code   string
		status int
	}{
		{"get", http.MethodGet, signedParams("DescribeInstanceTypes", "n-get"), "", 200},
		{"post form", http.MethodPost, signedParams("DescribeInstanceTypes", "n-post"), "", 200},
		{"nonce reused", http.MethodGet, signedParams("DescribeInstanceTypes", "n-get"), CodeSignatureNonceUsed, 400},
		{"unknown action", http.MethodGet, signedParams("RunInstances", "n-run"), CodeInvalidAction, 404},
		{"vpc-only version", http.MethodGet, func() url.Values {
			p := signedParams("CreateNetworkInterface", "n-vpc")
			p.Set("Version", versionVPC)
			return p
		}(), CodeInvalidAction, 404},
		{"old timestamp", http.MethodGet, func() url.Values {
			p := signedParams("DescribeInstanceTypes", "n-old")
			p.Set("Timestamp", time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04:05Z"))
			return p
		}(), CodeTimestampExpired, 400},
		{"wrong region", http.MethodGet, func() url.Values {
			p := signedParams("DescribeInstanceTypes", "n-region")
			p.Set("RegionId", "us-west-1")
			return p
		}(), CodeInvalidRegion, 404},
		{"special characters signed", http.MethodPost, func() url.Values {
			p := signedParams("CreateNetworkInterface", "n-chars")
			p.Set("VSwitchId", "vsw-sim-a")
			p.Set("SecurityGroupId", DefaultSecurityGroupID)
			p.Set("Description", "a b*c~d/é+&=")
			return p
		}(), "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawCall(t, host, tt.method, tt.params)
			if status != tt.status || (tt.code != "" && body["Code"] != tt.code) || body["RequestId"] == "" {
				t.Fatalf("http %d body %v; want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
}

func TestCloud_API_OpenMode(t *testing.T) {
	c, _ := mustCloud(t, func(cfg *Config) { cfg.Credentials = nil })
	client := mustECS(t, mustServeAPI(t, c), "anything", "whatever")
	if _, err := client.DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest()); err != nil {
		t.Fatalf("open mode rejected a call: %v", err)
	}
}

func TestCloud_SetFault(t *testing.T) {
	c, _, _, client := newTestAPI(t, nil)
	describe := func() error {
		_, err := client.DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest())
		return err
	}
	create := func() error {
		req := ecs.CreateCreateNetworkInterfaceRequest()
		req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
		_, err := client.CreateNetworkInterface(req)
		return err
	}

	c.SetFault("CreateNetworkInterface", Fault{ThrottleRate: 1})
	wantCode(t, create(), CodeThrottling, 400)
	if err := describe(); err != nil {
		t.Fatalf("fault leaked to another action: %v", err)
	}

	c.SetFault("", Fault{ErrorRate: 1, ErrorCode: "ServiceUnavailable"})
	wantCode(t, describe(), CodeServiceUnavailable, 503)
	wantCode(t, create(), CodeThrottling, 400) // its own fault wins

	c.SetFault("", Fault{ErrorRate: 1})
	wantCode(t, describe(), CodeInternalError, 500)

	c.ClearFaults()
	c.SetFault("DescribeInstanceTypes", Fault{Latency: 150 * time.Millisecond})
	start := time.Now()
	if err := describe(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("latency fault took %v", d)
	}

	c.SetFault("DescribeInstanceTypes", Fault{})
	c.SetFault("CreateNetworkInterface", Fault{})
	if err := create(); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
	s := c.Snapshot()
	if st := s.Calls["CreateNetworkInterface"]; st.Calls != 3 || st.Throttled != 2 {
		t.Fatalf("create stats %+v", st)
	}
	if st := s.Calls["DescribeInstanceTypes"]; st.Calls != 4 || st.Faulted != 2 {
		t.Fatalf("describe stats %+v", st)
	}
}

func TestCloud_SetFault_Rate(t *testing.T) {
	c, _, _, client := newTestAPI(t, nil)
	c.SetFault("", Fault{ThrottleRate: 0.5})
	throttled := 0
	for range 200 {
		req := ecs.CreateDescribeNetworkInterfacesRequest()
		req.PageSize = requests.NewInteger(1)
		if _, err := client.DescribeNetworkInterfaces(req); err != nil {
			throttled++
		}
	}
	// Binomial(200, 0.5): outside [60, 140] has odds below 1e-8.
	if throttled < 60 || throttled > 140 {
		t.Fatalf("%d of 200 throttled at rate 0.5", throttled)
	}
}
