package eni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
)

func TestKindOf(t *testing.T) {
	cases := []struct {
		code   string
		status int
		want   error
	}{
		{"InvalidVSwitchId.IpNotEnough", 403, ErrVSwitchExhausted},
		{"EniPerInstanceLimitExceeded", 403, ErrQuotaExceeded},
		{"QuotaExceeded.PrivateIpAddress", 403, ErrQuotaExceeded},
		{"InvalidOperation.EniCountExceeded", 403, ErrQuotaExceeded},
		{"InvalidOperation.Ipv4CountExceeded", 403, ErrQuotaExceeded},
		{"InvalidOperation.Ipv6CountExceeded", 403, ErrQuotaExceeded},
		{"InvalidVSwitch.Ipv6NotTurnOn", 403, ErrIPv6Unsupported},
		{"InvalidOperation.Ipv6NotSupport", 403, ErrIPv6Unsupported},
		{"InvalidEniId.NotFound", 404, ErrNotFound},
		{"InvalidVSwitchId.NotFound", 404, ErrNotFound},
		{"InvalidInstanceId.NotFound", 404, ErrNotFound},
		{"InvalidParameter", 400, ErrInvalidParameter},
		{"InvalidParameter.SecurityGroupId", 400, ErrInvalidParameter},
		{"MissingParameter", 400, ErrInvalidParameter},
		{"InvalidSecurityGroupId.Malformed", 400, ErrInvalidParameter},
		{"Throttling", 400, ErrThrottled},
		{"Throttling.User", 400, ErrThrottled},
		{"ServiceUnavailable", 503, ErrThrottled},
		{"InvalidOperation.InvalidEniState", 403, ErrInvalidState},
		{"InvalidOperation.AvailabilityZoneMismatch", 403, ErrZoneMismatch},
		{"IncorrectInstanceStatus", 403, ErrInvalidState},
		{"IncorrectEniStatus", 403, ErrInvalidState},
		{"InvalidAccessKeyId.NotFound", 404, ErrAuth},
		{"InvalidAccessKeyId", 400, ErrAuth},
		{"SignatureDoesNotMatch", 400, ErrAuth},
		{"Forbidden.RAM", 403, ErrAuth},
		{"", 401, ErrAuth},
		{"InternalError", 500, nil},
		{"SomethingNew", 400, nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_%d", tc.code, tc.status), func(t *testing.T) {
			if got := kindOf(tc.code, tc.status); got != tc.want {
				t.Fatalf("kindOf(%q, %d) = %v, want %v", tc.code, tc.status, got, tc.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestRetryable(t *testing.T) {
	api := func(code string, status int) error {
		return &APIError{Action: "X", Code: code, HTTPStatus: status, Kind: kindOf(code, status)}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"throttling", api("Throttling.User", 400), true},
		{"service unavailable", api("ServiceUnavailable", 503), true},
		{"internal error", api("InternalError", 500), true},
		{"bare 502", api("", 502), true},
		{"vswitch exhausted", api("InvalidVSwitchId.IpNotEnough", 403), false},
		{"quota", api("EniPerInstanceLimitExceeded", 403), false},
		{"not found", api("InvalidEniId.NotFound", 404), false},
		{"auth", api("SignatureDoesNotMatch", 400), false},
		{"invalid state with 5xx", api("IncorrectInstanceStatus", 500), false},
		{"unclassified 4xx", api("Odd", 400), false},
		{"net timeout", &url.Error{Op: "Post", URL: "http://x", Err: timeoutErr{}}, true},
		{"attempt deadline", &url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, true},
		{"eof", &url.Error{Op: "Post", URL: "http://x", Err: io.EOF}, true},
		{"canceled", &url.Error{Op: "Post", URL: "http://x", Err: context.Canceled}, false},
		{"refused", &url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection refused")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Fatalf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestAPIError_Is(t *testing.T) {
	err := fmt.Errorf("create eni: %w", &APIError{Code: "InvalidVSwitchId.IpNotEnough", Kind: ErrVSwitchExhausted})
	if !errors.Is(err, ErrVSwitchExhausted) {
		t.Fatal("wrapped APIError does not match its kind")
	}
	if errors.Is(err, ErrQuotaExceeded) {
		t.Fatal("APIError matches a kind it is not")
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "InvalidVSwitchId.IpNotEnough" {
		t.Fatalf("errors.As lost the code: %+v", ae)
	}
}
