package eni

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
)

// classify turns what the SDK returned for action into an *APIError whose
// Kind is the matching sentinel. Errors that never reached the API (network,
// context) are returned unchanged so that errors.Is still sees them.
func classify(action string, err error) error {
	if err == nil {
		return nil
	}
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		return err
	}
	return &APIError{
		Action:     action,
		HTTPStatus: se.HttpStatus(),
		Code:       se.ErrorCode(),
		Message:    se.Message(),
		RequestID:  se.RequestId(),
		Kind:       kindOf(se.ErrorCode(), se.HttpStatus()),
	}
}

// kindOf maps an OpenAPI error code to a sentinel, or nil when the code says
// nothing a caller should branch on. The codes are the ECS/VPC ones Terway
// handles (pkg/aliyun/client/errors); families are matched by prefix or
// suffix because the API adds new members (QuotaExceeded.Eni, ...) over time.
func kindOf(code string, status int) error {
	switch {
	case code == "":
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			return ErrAuth
		}
		return nil
	case code == "InvalidVSwitchId.IpNotEnough", code == "QuotaExceeded.VSwitchIp":
		return ErrVSwitchExhausted
	case code == "InvalidOperation.AvailabilityZoneMismatch":
		return ErrZoneMismatch
	case code == "InvalidVSwitch.Ipv6NotTurnOn", code == "InvalidOperation.Ipv6NotSupport":
		return ErrIPv6Unsupported
	case strings.HasPrefix(code, "Throttling"), code == "ServiceUnavailable":
		return ErrThrottled
	case isAuthCode(code):
		return ErrAuth
	case strings.HasSuffix(code, "NotFound"): // InvalidEniId.NotFound, ...
		return ErrNotFound
	case code == "EniPerInstanceLimitExceeded",
		strings.HasPrefix(code, "QuotaExceed"),
		strings.HasSuffix(code, "CountExceeded"),
		strings.HasSuffix(code, "LimitExceeded"):
		return ErrQuotaExceeded
	case strings.HasPrefix(code, "Incorrect") && strings.HasSuffix(code, "Status"),
		strings.HasPrefix(code, "InvalidOperation.") && (strings.Contains(code, "State") || strings.Contains(code, "Status")):
		return ErrInvalidState
	case strings.HasPrefix(code, "InvalidParameter"),
		strings.HasPrefix(code, "MissingParameter"),
		strings.HasSuffix(code, ".Malformed"),
		strings.HasPrefix(code, "InvalidAction"),
		strings.HasPrefix(code, "UnsupportedParameter"):
		return ErrInvalidParameter
	}
	return nil
}

func isAuthCode(code string) bool {
	for _, p := range []string{
		"InvalidAccessKeyId", "SignatureDoesNotMatch", "IncompleteSignature",
		"InvalidSecurityToken", "Forbidden", "NoPermission", "InvalidAccessKeySecret",
	} {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// retryable reports whether another try of the same call may succeed:
// throttling, 5xx and internal errors, network timeouts and connections the
// server dropped. Classified permanent errors are never retried: asking a
// full vSwitch again in a hot loop is what the pool must not do.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) ||
		errors.Is(err, ErrNoCredentials) || errors.Is(err, ErrInsecureCredentials) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Kind != nil && ae.Kind != ErrThrottled {
			return false
		}
		switch {
		case ae.Kind == ErrThrottled,
			strings.HasPrefix(ae.Code, "InternalError"),
			ae.Code == "UnknownError",
			ae.Code == "SignatureNonceUsed", // the next try signs with a new nonce
			ae.HTTPStatus >= 500:
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded)
}

// Temporary reports whether a later try of the call that returned err may
// succeed without anyone changing anything: the cloud API was unreachable,
// throttled, or answered a server error. It is what a caller maps to "try
// again later" (CNI error 11).
func Temporary(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrThrottled) || retryable(err)
}

// metricCode is the "code" label of one API attempt.
func metricCode(err error) string {
	if err == nil {
		return "OK"
	}
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Code != "" {
			return ae.Code
		}
		return http.StatusText(ae.HTTPStatus)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "Timeout"
	}
	if errors.Is(err, context.Canceled) {
		return "Canceled"
	}
	if errors.Is(err, ErrNoCredentials) || errors.Is(err, ErrInsecureCredentials) {
		return "NoCredentials"
	}
	return "NetworkError"
}
