package eni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// Defect 10: no secret ever appears in error text, logs or JSON. These
// tests drive real failures with known credentials and look for every
// secret, in every encoding a request carries it, everywhere a caller could
// show it.

const (
	leakKeyID  = "LTAIleakcheckKeyId0123"
	leakSecret = "leak-check-secret-+/=value"
	leakToken  = "CAISleak+check/token==value"
)

// signatures records the Signature of every request that left the client.
type signatures struct {
	mu   sync.Mutex
	sigs []string
	base http.RoundTripper
}

func (s *signatures) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.sigs = append(s.sigs, r.URL.Query()["Signature"]...)
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		if form, err := url.ParseQuery(string(b)); err == nil {
			s.sigs = append(s.sigs, form["Signature"]...)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	s.mu.Unlock()
	return s.base.RoundTrip(r)
}

func (s *signatures) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sigs...)
}

// capture is every log line of a test, from both slog handlers at every
// level: the client's logger and slog.Default.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *capture) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	return slog.New(fanout{slog.NewJSONHandler(c, opts), slog.NewTextHandler(c, opts)})
}

// fanout sends every record to several handlers.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if err := h.Handle(ctx, r.Clone()); err != nil {
			return err
		}
	}
	return nil
}
func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}
func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

// secretForms are the ways a secret can appear: as is and URL-encoded once
// or twice (the query, the string to sign).
func secretForms(s string) []string {
	once := url.QueryEscape(s)
	return []string{s, once, url.QueryEscape(once), strings.ReplaceAll(once, "+", "%20")}
}

// assertNoSecret fails when any secret shows in any of the texts.
func assertNoSecret(tb testing.TB, secrets []string, texts map[string]string) {
	tb.Helper()
	for _, s := range secrets {
		if len(s) < 6 {
			continue
		}
		for _, form := range secretForms(s) {
			for where, text := range texts {
				if strings.Contains(text, form) {
					tb.Errorf("%s shows a secret (%q):\n%s", where, form, text)
				}
			}
		}
	}
}

// leakCase is one real failure to drive.
type leakCase struct {
	name            string
	setup           func(tb testing.TB, opts *eni.AlibabaOptions, env *simEnv)
	wantUnreachable bool
}

func TestAlibabaClient_NoSecretInErrorsOrLogs(t *testing.T) {
	cases := []leakCase{
		{"sim down", func(tb testing.TB, o *eni.AlibabaOptions, _ *simEnv) {
			srv := httptest.NewServer(http.NotFoundHandler())
			o.Endpoint = strings.TrimPrefix(srv.URL, "http://")
			srv.Close()
		}, true},
		{"connection refused", func(_ testing.TB, o *eni.AlibabaOptions, _ *simEnv) { o.Endpoint = "127.0.0.1:1" }, true},
		{"connection reset", func(tb testing.TB, o *eni.AlibabaOptions, _ *simEnv) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					_, _ = c.Read(make([]byte, 1024))
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
			}()
			o.Endpoint = l.Addr().String()
		}, true},
		{"timeout", func(_ testing.TB, o *eni.AlibabaOptions, env *simEnv) {
			o.CallTimeout = 100 * time.Millisecond
			env.cloud.SetFault("", sim.Fault{Latency: time.Second})
		}, true},
		{"sim answers 500", func(_ testing.TB, _ *eni.AlibabaOptions, env *simEnv) {
			env.cloud.SetFault("", sim.Fault{ErrorRate: 1})
		}, false},
		{"sim answers 503", func(_ testing.TB, _ *eni.AlibabaOptions, env *simEnv) {
			env.cloud.SetFault("", sim.Fault{ErrorRate: 1, ErrorCode: sim.CodeServiceUnavailable})
		}, false},
		{"throttled", func(_ testing.TB, _ *eni.AlibabaOptions, env *simEnv) {
			env.cloud.SetFault("", sim.Fault{ThrottleRate: 1})
		}, false},
		{"bad signature echoes the string to sign", func(_ testing.TB, o *eni.AlibabaOptions, _ *simEnv) {
			o.Credentials.AccessKeySecret = leakSecret + "-wrong"
		}, false},
		{"token the cloud does not know", func(_ testing.TB, o *eni.AlibabaOptions, _ *simEnv) {
			o.Credentials.AccessKeyID = "STS." + leakKeyID
		}, false},
		{"a proxy echoes the request URL", func(tb testing.TB, o *eni.AlibabaOptions, _ *simEnv) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprintf(w, "<html>bad gateway for http://%s%s</html>", r.Host, r.URL.RequestURI())
			}))
			tb.Cleanup(srv.Close)
			o.Endpoint = strings.TrimPrefix(srv.URL, "http://")
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := mustSim(t, func(cfg *sim.Config) {
				cfg.Credentials = map[string]string{leakKeyID: leakSecret}
			})
			var logs capture
			prev := slog.Default()
			slog.SetDefault(logs.logger())
			t.Cleanup(func() { slog.SetDefault(prev) })

			sigs := &signatures{base: http.DefaultTransport}
			opts := env.fastOptions()
			opts.Credentials = eni.Credentials{AccessKeyID: leakKeyID, AccessKeySecret: leakSecret, SecurityToken: leakToken}
			opts.Transport = sigs
			opts.Logger = logs.logger()
			tc.setup(t, &opts, env)
			c := mustClient(t, opts)
			_, err := c.VSwitches(context.Background(), "vsw-sim-a")
			if err == nil {
				t.Fatal("the failure did not fail")
			}
			if got := errors.Is(err, eni.ErrUnreachable); got != tc.wantUnreachable {
				t.Fatalf("errors.Is(%v, ErrUnreachable) = %v, want %v", err, got, tc.wantUnreachable)
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				t.Fatalf("the error still holds the *url.Error of the signed request: %v", ue)
			}
			slog.Error("cloud call failed", "err", err) // as the daemon logs it
			opts.Logger.Error("cloud call failed", "err", err, "client", c, "credentials", opts.Credentials)
			var ae *eni.APIError
			apiJSON := []byte("{}")
			if errors.As(err, &ae) {
				apiJSON, _ = json.Marshal(ae)
			}
			credsJSON, _ := json.Marshal(opts.Credentials)
			secrets := append([]string{leakKeyID, leakSecret, leakToken, opts.Credentials.AccessKeySecret}, sigs.all()...)
			if len(sigs.all()) == 0 {
				t.Fatal("no signed request was seen")
			}
			assertNoSecret(t, secrets, map[string]string{
				"err.Error()":       err.Error(),
				"%+v of the error":  fmt.Sprintf("%+v", err),
				"%#v of the error":  fmt.Sprintf("%#v", err),
				"%v of the client":  fmt.Sprintf("%v %+v", c, c),
				"logs":              logs.String(),
				"APIError JSON":     string(apiJSON),
				"Credentials JSON":  string(credsJSON),
				"%+v of the option": fmt.Sprintf("%+v", opts),
			})
		})
	}
}

// Ensure the credentials of an instance RAM role stay secret too when the
// API refuses them (expired token) and when the metadata service is gone.
func TestAlibabaClient_NoSecretInErrors_RAMRole(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) { cfg.STSLifetime = 2 * time.Second })
	var logs capture
	prev := slog.Default()
	slog.SetDefault(logs.logger())
	t.Cleanup(func() { slog.SetDefault(prev) })
	md := eni.NewMetadata(env.metaURL, nil)
	sts, err := md.RAMRoleCredentials(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	sigs := &signatures{base: http.DefaultTransport}
	opts := env.fastOptions()
	opts.Credentials = sts // fixed, so it expires under the client
	opts.Transport = sigs
	opts.Logger = logs.logger()
	c := mustClient(t, opts)
	if _, err := c.VSwitches(context.Background(), "vsw-sim-a"); err != nil {
		t.Fatalf("fresh sts credentials: %v", err)
	}
	time.Sleep(time.Until(sts.Expiration) + 50*time.Millisecond)
	_, err = c.VSwitches(context.Background(), "vsw-sim-a")
	var ae *eni.APIError
	if !errors.Is(err, eni.ErrAuth) || !errors.As(err, &ae) || ae.Code != sim.CodeSecurityTokenExpired {
		t.Fatalf("err = %v, want %s", err, sim.CodeSecurityTokenExpired)
	}
	// A provider over a dead metadata service.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadMD := eni.NewMetadata(dead.URL, nil)
	dead.Close()
	opts.CredentialProvider = eni.NewRAMRoleCredentials(deadMD, "")
	c2 := mustClient(t, opts)
	_, err2 := c2.VSwitches(context.Background(), "vsw-sim-a")
	if err2 == nil {
		t.Fatal("no error without metadata")
	}
	slog.Error("cloud call failed", "err", err, "err2", err2, "credentials", sts)
	apiJSON, _ := json.Marshal(ae)
	assertNoSecret(t, append([]string{sts.AccessKeyID, sts.AccessKeySecret, sts.SecurityToken}, sigs.all()...), map[string]string{
		"expired err": err.Error(), "metadata err": err2.Error(), "%+v": fmt.Sprintf("%+v %+v", err, err2),
		"logs": logs.String(), "APIError JSON": string(apiJSON),
	})
}
