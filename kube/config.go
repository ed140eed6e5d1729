package kube

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ServiceAccountDir is where Kubernetes mounts a pod's service account
// token, CA bundle and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config says how to reach and authenticate to an API server. Build one
// with InClusterConfig or LoadKubeconfig, or fill it by hand.
type Config struct {
	// Host is the API server's base URL, e.g. "https://10.96.0.1:443". A
	// path after the host (a proxy prefix) is kept.
	Host string

	// BearerToken is sent as "Authorization: Bearer". When TokenFile is
	// also set, the file's content wins once it has been read.
	BearerToken string
	// TokenFile holds the bearer token. It is re-read every TokenReload,
	// because bound service account tokens rotate (kubelet rewrites the
	// file well before expiry).
	TokenFile string
	// TokenReload is how long a token read from TokenFile is used before
	// the file is read again. Zero means one minute (client-go's period).
	TokenReload time.Duration

	// CAData is a PEM bundle of CAs that sign the server's certificate;
	// CAFile names a file with one. Both empty means the system roots.
	CAData []byte
	CAFile string
	// Insecure skips verification of the server's certificate. Tests only.
	Insecure bool
	// ServerName overrides the name checked in the server's certificate.
	ServerName string

	// CertData/KeyData (PEM) or CertFile/KeyFile are a client certificate.
	CertData []byte
	KeyData  []byte
	CertFile string
	KeyFile  string

	// Namespace is the namespace of the kubeconfig context or of the
	// service account; informational, requests name their namespace.
	Namespace string

	// UserAgent is sent with every request. Zero means "veni".
	UserAgent string
	// QPS and Burst limit the request rate of one Client (a token bucket;
	// watches count once when opened). Zero means 20 and 40; negative QPS
	// means no limit.
	QPS   float64
	Burst int
	// Timeout bounds every request except watches, whose length the
	// server's timeoutSeconds bounds. Zero means 30 s.
	Timeout time.Duration
}

// InClusterConfig returns the config of a process running in a pod: the
// API server from KUBERNETES_SERVICE_HOST/PORT, the service account's token
// file (re-read as it rotates), CA and namespace under ServiceAccountDir.
// May return an error wrapping ErrNotInCluster.
func InClusterConfig() (*Config, error) {
	return inClusterConfig(ServiceAccountDir, os.Getenv)
}

// InClusterConfigFrom is InClusterConfig with the service account files
// read from dir instead of ServiceAccountDir (a non-standard mount).
func InClusterConfigFrom(dir string) (*Config, error) {
	return inClusterConfig(dir, os.Getenv)
}

func inClusterConfig(dir string, getenv func(string) string) (*Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("in-cluster config: %w (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT unset; pass --kubeconfig outside a pod)", ErrNotInCluster)
	}
	tokenFile := filepath.Join(dir, "token")
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("in-cluster config: %w: %w (is automountServiceAccountToken off?)", ErrNotInCluster, err)
	}
	cfg := &Config{
		Host:      "https://" + net.JoinHostPort(host, port),
		TokenFile: tokenFile,
		CAFile:    filepath.Join(dir, "ca.crt"),
	}
	if ns, err := os.ReadFile(filepath.Join(dir, "namespace")); err == nil {
		cfg.Namespace = strings.TrimSpace(string(ns))
	}
	return cfg, nil
}

// tlsConfig builds the TLS client configuration from the CA, client
// certificate and verification settings.
func (c *Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.Insecure} //nolint:gosec // Insecure is opt-in for tests
	ca := c.CAData
	if len(ca) == 0 && c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca: %w", err)
		}
		ca = b
	}
	if len(ca) > 0 && !c.Insecure {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("%w: no PEM certificate in the CA data", ErrInvalidConfig)
		}
		tc.RootCAs = pool
	}
	cert, key := c.CertData, c.KeyData
	if len(cert) == 0 && c.CertFile != "" {
		b, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, fmt.Errorf("read client certificate: %w", err)
		}
		cert = b
	}
	if len(key) == 0 && c.KeyFile != "" {
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read client key: %w", err)
		}
		key = b
	}
	if len(cert) > 0 || len(key) > 0 {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrInvalidConfig, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// tokenSource yields the bearer token: a fixed one, or one read from a
// file and re-read after a period.
type tokenSource struct {
	static string
	path   string
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	token   string
	readAt  time.Time
	lastErr error
}

// Token returns the current token. A failed re-read keeps the previous
// token (kubelet may be replacing the file), and only fails when no token
// was ever read.
func (s *tokenSource) Token() (string, error) {
	if s.path == "" {
		return s.static, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.token != "" && now.Sub(s.readAt) < s.period {
		return s.token, nil
	}
	b, err := os.ReadFile(s.path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok != "" {
			s.token, s.readAt, s.lastErr = tok, now, nil
			return tok, nil
		}
		err = fmt.Errorf("token file %s is empty", s.path)
	}
	s.lastErr = err
	if s.token != "" {
		return s.token, nil
	}
	if s.static != "" {
		return s.static, nil // as client-go: the file wins once read, the literal token covers until then
	}
	return "", fmt.Errorf("read token: %w", err)
}

// authTransport adds the bearer token and user agent to each request.
type authTransport struct {
	base  http.RoundTripper
	token *tokenSource
	ua    string
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.token.Token()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("User-Agent", t.ua)
	return t.base.RoundTrip(req)
}

// transport builds the HTTP transport: TLS, HTTP/2 with pings so a dead
// connection (API server gone without a FIN) is noticed within ~45 s, and
// the auth wrapper.
func (c *Config) transport() (http.RoundTripper, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	period := c.TokenReload
	if period <= 0 {
		period = time.Minute
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "veni"
	}
	return &authTransport{
		base:  base,
		token: &tokenSource{static: c.BearerToken, path: c.TokenFile, period: period, now: time.Now},
		ua:    ua,
	}, nil
}
