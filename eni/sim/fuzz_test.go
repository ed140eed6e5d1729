package sim

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzNow is the clock of the fuzz target: the seeds in
// testdata/fuzz/FuzzCloud_HandleAPI are signed with this timestamp.
var fuzzNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// FuzzCloud_HandleAPI feeds arbitrary requests to the OpenAPI's parser and
// authenticator, with credentials (open=false) or in open mode, where the
// actions behind them run too. Whatever comes in, the sim must not panic,
// must answer either a success or an API error with a code and a 4xx/5xx
// status, and must never let a request past authentication whose
// signature is not the test key's HMAC of its parameters.
//
// The committed corpus (testdata/fuzz/FuzzCloud_HandleAPI) runs with every
// plain "go test"; "go test -fuzz FuzzCloud_HandleAPI ./eni/sim" explores.
func FuzzCloud_HandleAPI(f *testing.F) {
	f.Add("GET", "Action=DescribeInstanceTypes&Version=2014-05-26", "", true)
	f.Add("POST", "", "Action=CreateNetworkInterface&Version=2014-05-26&VSwitchId=vsw-sim-a&SecurityGroupId=sg-sim-default&Tag.1.Key=a&Tag.1.Value=b", true)
	f.Add("GET", "Action=DescribeNetworkInterfaces&Version=2014-05-26&MaxResults=5&NextToken=seq-1&NetworkInterfaceId.1=eni-x", "", true)
	f.Add("GET", "Action=AssignPrivateIpAddresses&Version=2014-05-26&NetworkInterfaceId=eni-x&PrivateIpAddress.1=172.30.1.9", "", true)
	f.Add("GET", "Action=DescribeVSwitches&Version=2016-04-28&PageSize=50&PageNumber=2", "", true)
	f.Add("GET", "AccessKeyId=LTAIsimtestkey&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&Timestamp=x", "", false)
	f.Add("GET", "AccessKeyId=STS.nobody&SecurityToken=CAIS&Action=X", "", false)
	f.Add("PUT", "%zz", "\x00", false)
	f.Fuzz(func(t *testing.T, method, query, body string, open bool) {
		cfg := DefaultConfig()
		cfg.AttachDelay, cfg.DetachDelay = time.Millisecond, time.Millisecond
		if !open {
			cfg.Credentials = map[string]string{testKeyID: testSecret}
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.now = func() time.Time { return fuzzNow }
		if _, err := c.AddInstance(InstanceSpec{ID: "i-fuzz"}); err != nil {
			t.Fatal(err)
		}
		r := &http.Request{
			Method: method,
			URL:    &url.URL{Path: "/", RawQuery: query},
			Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body:   io.NopCloser(strings.NewReader(body)),
		}
		if method == "" {
			r.Method = http.MethodGet
		}
		resp, aerr := c.handleAPI(r, http.Header{})
		if aerr != nil {
			if aerr.code == "" || aerr.status < 400 || aerr.status > 599 {
				t.Fatalf("error answer without a code or with http %d: %+v", aerr.status, aerr)
			}
			return
		}
		if resp == nil {
			t.Fatal("neither an answer nor an error")
		}
		if open {
			return
		}
		// Past authentication: the signature must be the test key's.
		r.Body = io.NopCloser(strings.NewReader(body))
		r.Form, r.PostForm = nil, nil
		params, err := requestParams(r)
		if err != nil {
			t.Fatalf("authenticated a request whose parameters do not parse: %v", err)
		}
		if params.Get("AccessKeyId") != testKeyID || params.Get("Signature") != Sign(StringToSign(r.Method, params), testSecret) {
			t.Fatalf("authenticated a request not signed by the test key: %v", params)
		}
	})
}
