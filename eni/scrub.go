package eni

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
)

// Why this file exists: on a network error the SDK returns the *url.Error
// of net/http, whose text is the whole signed request URL (AccessKeyId,
// SecurityToken, Signature in the query), and on SignatureDoesNotMatch the
// API echoes the string to sign (AccessKeyId and SecurityToken again).
// Those texts reach CNI errors, which kubelet turns into pod events that any
// user of the namespace can read, and the daemon's log. sdkError is the one
// place an error leaves the SDK, and nothing it returns carries a secret.

// secretFields are parameter and field names whose values are never shown.
var secretFields = []string{
	"AccessKeyId", "AccessKeySecret", "SecurityToken", "Signature", "BearerToken",
	"X-acs-security-token", "Credential", // the last two: headers of the v3 (ROA) signature
}

// stringToSignMarker is how the API and the SDK introduce the string to
// sign in a SignatureDoesNotMatch message.
const stringToSignMarker = "string to sign is:"

// sdkError turns what the SDK returned for one attempt into an error that
// carries no secret: an *APIError with a scrubbed message for an answer of
// the API, or a *safeError for everything else. Errors that never got an
// answer (connection refused or reset, DNS, TLS, timeouts) match
// ErrUnreachable. creds are what the attempt was signed with; their values
// are removed wherever they appear, in every encoding a request uses.
func sdkError(action string, err error, creds Credentials) error {
	if err == nil {
		return nil
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		ae := classify(action, se).(*APIError)
		ae.Message = scrub(ae.Message, creds)
		return ae
	}
	return &safeError{msg: scrub(err.Error(), creds), cause: safeCause(err, creds), unreachable: isUnreachable(err)}
}

// safeError is a transport or SDK error whose text was scrubbed. It unwraps
// only to causes that carry no secret (the network error inside a
// *url.Error, a context error) and to ErrUnreachable when no answer came.
type safeError struct {
	msg         string
	cause       error
	unreachable bool
}

func (e *safeError) Error() string {
	if e.unreachable {
		return ErrUnreachable.Error() + ": " + e.msg
	}
	return e.msg
}

func (e *safeError) Unwrap() []error {
	var out []error
	if e.unreachable {
		out = append(out, ErrUnreachable)
	}
	if e.cause != nil {
		out = append(out, e.cause)
	}
	return out
}

// safeCause returns the innermost part of err's chain that can be kept for
// errors.Is and errors.As: never a *url.Error (its URL is the signed
// request) nor anything whose text changes when scrubbed.
func safeCause(err error, creds Credentials) error {
	for err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
			continue
		}
		var ce *sdkerrors.ClientError
		if errors.As(err, &ce) {
			err = ce.OriginError()
			continue
		}
		if scrub(err.Error(), creds) != err.Error() {
			return nil
		}
		return err
	}
	return nil
}

// isUnreachable reports whether err means the request got no answer. A
// cancelled context is the caller's doing, not the cloud's.
func isUnreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// scrub returns s without anything credential-like: the known values of
// creds in every encoding, what follows "string to sign is:" on its line,
// the query of every URL, and the value of every field in secretFields
// (Name=v, Name%3Dv, "Name":"v", Name: v).
func scrub(s string, creds Credentials) string {
	s = replaceEncoded(s, creds.AccessKeySecret, redacted)
	s = replaceEncoded(s, creds.SecurityToken, redacted)
	s = replaceEncoded(s, creds.AccessKeyID, redactKeyID(creds.AccessKeyID))
	s = cutStringToSign(s)
	s = stripQueries(s)
	for _, name := range secretFields {
		s = redactField(s, name)
	}
	return s
}

// scrubText applies the same scrubbing to text from elsewhere (a log line,
// a body) when the credentials are not known: queries, the string to sign
// and credential-looking fields are removed.
func scrubText(s string) string { return scrub(s, Credentials{}) }

// minKnownLen keeps scrub from replacing short test values ("id") inside
// ordinary words; such values are still caught by field name.
const minKnownLen = 6

func replaceEncoded(s, v, repl string) string {
	if len(v) < minKnownLen {
		return s
	}
	once := url.QueryEscape(v)
	sdk := strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(once)
	for _, form := range []string{v, once, sdk, url.QueryEscape(once), url.QueryEscape(sdk), url.PathEscape(v)} {
		s = strings.ReplaceAll(s, form, repl)
	}
	return s
}

func cutStringToSign(s string) string {
	i := strings.Index(lowerASCII(s), stringToSignMarker)
	if i < 0 {
		return s
	}
	start := i + len(stringToSignMarker)
	end := strings.IndexByte(s[start:], '\n')
	if end < 0 {
		return s[:start] + redacted
	}
	return s[:start] + redacted + s[start+end:]
}

// stripQueries drops the query and fragment of every http(s) URL in s.
func stripQueries(s string) string {
	var b strings.Builder
	for {
		low := lowerASCII(s)
		i := indexAny(low, "http://", "https://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(s[i:])
		if j := strings.IndexAny(s[i:], " \t\r\n\"'`<>"); j >= 0 {
			end = i + j
		}
		u := s[i:end]
		if q := strings.IndexAny(u, "?#"); q >= 0 {
			u = u[:q] + "?" + redacted
		}
		b.WriteString(s[:i])
		b.WriteString(u)
		s = s[end:]
	}
}

func indexAny(s string, subs ...string) int {
	best := -1
	for _, sub := range subs {
		if i := strings.Index(s, sub); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// fieldSeparators follow a field name; the longest match wins.
var fieldSeparators = []string{`":"`, `": "`, "%253d", "%3d", "=", ": ", ":"}

// valueEnds end a field value; "%26" and "%2526" are '&' once or twice
// encoded, as in a string to sign.
var valueEnds = []string{"&", "%26", "%2526", " ", "\t", "\n", "\r", `"`, "'", ",", ";", "}", ")", "]", "\\"}

func redactField(s, name string) string {
	lname := lowerASCII(name)
	var b strings.Builder
	for {
		low := lowerASCII(s)
		i := strings.Index(low, lname)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		after := i + len(lname)
		sep := ""
		for _, cand := range fieldSeparators {
			if strings.HasPrefix(low[after:], cand) && len(cand) > len(sep) {
				sep = cand
			}
		}
		if sep == "" {
			b.WriteString(s[:after])
			s = s[after:]
			continue
		}
		start := after + len(sep)
		if sep == ": " || sep == ":" {
			start += len(s[start:]) - len(strings.TrimLeft(s[start:], " "))
		}
		end := len(s)
		for _, e := range valueEnds {
			if j := strings.Index(low[start:], e); j >= 0 && start+j < end {
				end = start + j
			}
		}
		b.WriteString(s[:start])
		if end > start {
			b.WriteString(redacted)
		}
		s = s[end:]
	}
}

// lowerASCII lower-cases ASCII letters only, so byte offsets stay valid.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
