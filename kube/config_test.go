package kube

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKubeconfig_Cases(t *testing.T) {
	dir := t.TempDir()
	b64 := base64.StdEncoding.EncodeToString
	writeFile(t, dir, "tok", "file-token\n")
	yamlCfg := `apiVersion: v1
kind: Config
current-context: a
clusters:
- name: ca
  cluster:
    server: https://a.example:6443
    certificate-authority: certs/ca.crt
    tls-server-name: api.internal
- name: cb
  cluster:
    server: https://b.example
    certificate-authority-data: ` + b64([]byte("PEMDATA")) + `
    insecure-skip-tls-verify: true
contexts:
- name: a
  context: {cluster: ca, user: ua, namespace: kube-system}
- name: b
  context: {cluster: cb, user: ub}
- name: exec
  context: {cluster: cb, user: uexec}
- name: missing
  context: {cluster: nope, user: ua}
users:
- name: ua
  user:
    tokenFile: tok
    client-certificate: /abs/client.crt
    client-key: keys/client.key
- name: ub
  user:
    token: literal
    client-certificate-data: ` + b64([]byte("CERT")) + `
    client-key-data: ` + b64([]byte("KEY")) + `
- name: uexec
  user:
    exec:
      command: aws
`
	yp := writeFile(t, dir, "config.yaml", yamlCfg)
	jp := writeFile(t, dir, "config.json", `{"current-context":"j","clusters":[{"name":"cj","cluster":{"server":"https://j.example"}}],
		"contexts":[{"name":"j","context":{"cluster":"cj","user":"uj"}},{"name":"a","context":{"cluster":"cj","user":"uj"}}],
		"users":[{"name":"uj","user":{"token":"jtok"}}]}`)

	tests := []struct {
		name    string
		paths   string
		context string
		check   func(t *testing.T, c *Config)
		wantErr error
	}{
		{"yaml current context", yp, "", func(t *testing.T, c *Config) {
			if c.Host != "https://a.example:6443" || c.CAFile != filepath.Join(dir, "certs/ca.crt") || c.ServerName != "api.internal" ||
				c.TokenFile != filepath.Join(dir, "tok") || c.CertFile != "/abs/client.crt" || c.KeyFile != filepath.Join(dir, "keys/client.key") ||
				c.Namespace != "kube-system" {
				t.Errorf("%+v", c)
			}
		}, nil},
		{"yaml explicit context with data", yp, "b", func(t *testing.T, c *Config) {
			if string(c.CAData) != "PEMDATA" || !c.Insecure || c.BearerToken != "literal" || string(c.CertData) != "CERT" || string(c.KeyData) != "KEY" {
				t.Errorf("%+v", c)
			}
		}, nil},
		{"json", jp, "", func(t *testing.T, c *Config) {
			if c.Host != "https://j.example" || c.BearerToken != "jtok" {
				t.Errorf("%+v", c)
			}
		}, nil},
		{"merge: first file wins", yp + string(os.PathListSeparator) + jp, "a", func(t *testing.T, c *Config) {
			if c.Host != "https://a.example:6443" {
				t.Errorf("context a should come from the first file: %+v", c)
			}
		}, nil},
		{"merge: names only in the second file", jp + string(os.PathListSeparator) + yp, "b", func(t *testing.T, c *Config) {
			if c.Host != "https://b.example" {
				t.Errorf("%+v", c)
			}
		}, nil},
		{"merge skips a missing file", filepath.Join(dir, "nope") + string(os.PathListSeparator) + jp, "", nil, nil},
		{"exec plugin refused", yp, "exec", nil, ErrInvalidConfig},
		{"unknown context", yp, "zzz", nil, ErrInvalidConfig},
		{"context names a missing cluster", yp, "missing", nil, ErrInvalidConfig},
		{"missing file", filepath.Join(dir, "nope"), "", nil, os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadKubeconfig(tc.paths, tc.context)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestLoadKubeconfig_EnvKUBECONFIG(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "c", `{"current-context":"x","clusters":[{"name":"c","cluster":{"server":"https://env.example"}}],"contexts":[{"name":"x","context":{"cluster":"c"}}]}`)
	t.Setenv("KUBECONFIG", p)
	c, err := LoadKubeconfig("", "")
	if err != nil || c.Host != "https://env.example" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestInClusterConfig_Cases(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "t0")
	writeFile(t, dir, "namespace", "kube-system\n")
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
	c, err := inClusterConfig(dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "https://[fd00::1]:443" || c.TokenFile != filepath.Join(dir, "token") || c.CAFile != filepath.Join(dir, "ca.crt") || c.Namespace != "kube-system" {
		t.Errorf("%+v", c)
	}
	if _, err := inClusterConfig(dir, func(string) string { return "" }); !errors.Is(err, ErrNotInCluster) {
		t.Errorf("no env: %v", err)
	}
	if _, err := inClusterConfig(t.TempDir(), func(k string) string { return env[k] }); !errors.Is(err, ErrNotInCluster) {
		t.Errorf("no token: %v", err)
	}
}

func TestTokenSource_Token_Rotates(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "token", "one\n")
	now := time.Unix(1000, 0)
	s := &tokenSource{path: p, period: time.Minute, now: func() time.Time { return now }}
	steps := []struct {
		advance time.Duration
		write   string // new file content; "-" removes the file
		want    string
	}{
		{0, "", "one"},
		{30 * time.Second, "two", "one"}, // cached within the period
		{31 * time.Second, "", "two"},    // re-read after it
		{2 * time.Minute, "-", "two"},    // file gone: keep the last good one
		{2 * time.Minute, "three", "three"},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		switch st.write {
		case "":
		case "-":
			os.Remove(p)
		default:
			writeFile(t, dir, "token", st.write)
		}
		got, err := s.Token()
		if err != nil || got != st.want {
			t.Errorf("step %d: %q %v, want %q", i, got, err, st.want)
		}
	}
	empty := &tokenSource{path: filepath.Join(dir, "none"), period: time.Minute, now: time.Now}
	if _, err := empty.Token(); err == nil {
		t.Error("no file, no token: want an error")
	}
	fallback := &tokenSource{static: "lit", path: filepath.Join(dir, "none"), period: time.Minute, now: time.Now}
	if tok, err := fallback.Token(); err != nil || tok != "lit" {
		t.Errorf("literal fallback: %q %v", tok, err)
	}
}

// TestClient_Token_FromFileOverTLS checks the whole path: CA verification
// of a TLS server, the token file sent as a bearer token, and a rotated
// token picked up after TokenReload.
func TestClient_Token_FromFileOverTLS(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path != "/api/v1/namespaces/ns/configmaps/cm" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"ns"},"data":{"k":"v"}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "first")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := New(&Config{Host: srv.URL, TokenFile: tok, TokenReload: 50 * time.Millisecond, CAData: ca})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cm, err := Get(ctx, c, ConfigMaps, "ns", "cm")
	if err != nil || cm.Data["k"] != "v" {
		t.Fatalf("%+v %v", cm, err)
	}
	writeFile(t, dir, "token", "second")
	time.Sleep(100 * time.Millisecond)
	if _, err := Get(ctx, c, ConfigMaps, "ns", "cm"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "Bearer first,Bearer second" {
		t.Errorf("tokens sent: %v", seen)
	}

	// Without the CA the server is not trusted.
	c2, _ := New(&Config{Host: srv.URL, BearerToken: "x"})
	if _, err := Get(ctx, c2, ConfigMaps, "ns", "cm"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server accepted: %v", err)
	}
}

func TestNew_Invalid(t *testing.T) {
	for _, cfg := range []*Config{nil, {}, {Host: "ftp://x"}, {Host: "no-scheme"}, {Host: "https://x", CAData: []byte("junk")}} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
