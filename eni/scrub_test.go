package eni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

func TestScrub(t *testing.T) {
	creds := Credentials{AccessKeyID: "STS.NUkeyid1234567", AccessKeySecret: "sec+ret/value=", SecurityToken: "CAIS+tok/en=="}
	signedURL := "http://ecs.aliyuncs.com/?AccessKeyId=STS.NUkeyid1234567&Action=DescribeVSwitches&SecurityToken=" +
		url.QueryEscape(creds.SecurityToken) + "&Signature=abc%2Bdef%3D&SignatureMethod=HMAC-SHA1"
	cases := []struct {
		name string
		in   string
		keep []string // must survive
	}{
		{"url error", fmt.Sprintf("Get %q: dial tcp 127.0.0.1:1: connect: connection refused", signedURL),
			[]string{"http://ecs.aliyuncs.com/", "connection refused", "Get "}},
		{"unquoted url", "Post " + signedURL + " EOF", []string{"EOF"}},
		{"string to sign", "Specified signature is not matched with our calculation. server string to sign is:GET&%2F&AccessKeyId%3DSTS.NUkeyid1234567%26SecurityToken%3DCAIS%252Btok%252Fen%253D%253D\nnext line",
			[]string{"Specified signature is not matched", "next line"}},
		{"form fields", "AccessKeyId=STS.NUkeyid1234567&SecurityToken=x&Signature=y", []string{"AccessKeyId="}},
		{"encoded fields", "AccessKeyId%3DSTS.NUkeyid1234567%26Signature%3Dzzz%26Format%3DJSON", []string{"Format%3DJSON"}},
		{"json fields", `{"AccessKeyId":"STS.NUkeyid1234567","AccessKeySecret": "sec+ret/value=","SecurityToken":"CAIS+tok/en=="}`, nil},
		{"header", "X-Acs-Security-Token: CAIS+tok/en==\nUser-Agent: veni", []string{"User-Agent: veni"}},
		{"bare values", "the token CAIS+tok/en== and secret sec+ret/value= leaked", []string{"leaked"}},
		{"harmless", "InvalidVSwitchId.IpNotEnough: The specified VSwitch vsw-1 has not enough IpAddress.",
			[]string{"InvalidVSwitchId.IpNotEnough: The specified VSwitch vsw-1 has not enough IpAddress."}},
		{"codes keep their names", "InvalidSecurityToken.Expired: Specified SecurityToken is expired. SignatureDoesNotMatch",
			[]string{"InvalidSecurityToken.Expired", "SignatureDoesNotMatch"}},
	}
	secrets := []string{creds.AccessKeyID, creds.AccessKeySecret, creds.SecurityToken, url.QueryEscape(creds.SecurityToken),
		"abc%2Bdef%3D", "y", "zzz"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := scrub(tc.in, creds)
			for _, s := range secrets {
				if len(s) > 3 && strings.Contains(got, s) || len(s) <= 3 && strings.Contains(got, "="+s) {
					t.Errorf("scrub(%q) = %q: still shows %q", tc.in, got, s)
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(got, k) {
					t.Errorf("scrub(%q) = %q: lost %q", tc.in, got, k)
				}
			}
		})
	}
}

func TestSDKError_Transport(t *testing.T) {
	creds := Credentials{AccessKeyID: "LTAIsecretkeyid", AccessKeySecret: "the-secret"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &netSyscallError{syscall.ECONNREFUSED}}
	cases := []struct {
		name            string
		err             error
		wantUnreachable bool
		wantIs          error
	}{
		{"refused", &url.Error{Op: "Get", URL: "http://h/?AccessKeyId=LTAIsecretkeyid&Signature=sig", Err: refused}, true, syscall.ECONNREFUSED},
		{"timeout", &url.Error{Op: "Get", URL: "http://h/?Signature=sig", Err: timeoutErr{}}, true, nil},
		{"deadline", &url.Error{Op: "Get", URL: "http://h/?Signature=sig", Err: context.DeadlineExceeded}, true, context.DeadlineExceeded},
		{"cancelled", &url.Error{Op: "Get", URL: "http://h/?Signature=sig", Err: context.Canceled}, false, context.Canceled},
		{"sdk client error", errors.New("SDK.JsonUnmarshalError: the-secret"), false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := sdkError("DescribeVSwitches", tc.err, creds)
			if got := errors.Is(err, ErrUnreachable); got != tc.wantUnreachable {
				t.Fatalf("Is(ErrUnreachable) = %v for %v", got, err)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("%v lost %v from its chain", err, tc.wantIs)
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				t.Fatalf("%v still holds the *url.Error", err)
			}
			for _, s := range []string{"sig", "LTAIsecretkeyid", "the-secret"} {
				if strings.Contains(err.Error(), "="+s) || strings.Contains(err.Error(), s) && len(s) > 3 {
					t.Fatalf("%q shows %s", err, s)
				}
			}
		})
	}
	if !retryable(sdkError("X", &url.Error{Op: "Get", URL: "http://h/", Err: timeoutErr{}}, creds)) {
		t.Fatal("a scrubbed timeout is no longer retried")
	}
}

type netSyscallError struct{ errno syscall.Errno }

func (e *netSyscallError) Error() string { return "connect: " + e.errno.Error() }
func (e *netSyscallError) Unwrap() error { return e.errno }
