package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Client talks to one API server. It is safe for concurrent use; create one
// per process and share it.
type Client struct {
	base    *url.URL
	hc      *http.Client
	limiter *rate.Limiter // nil: unlimited
	timeout time.Duration
}

// New returns a client for cfg. It reads the CA and client certificate
// files now; the token file is read on first use and re-read as it rotates.
// May return an error wrapping ErrInvalidConfig.
func New(cfg *Config) (*Client, error) {
	if cfg == nil || cfg.Host == "" {
		return nil, fmt.Errorf("kube client: %w: no API server host", ErrInvalidConfig)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("kube client: %w: host %q is not a URL", ErrInvalidConfig, cfg.Host)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("kube client: %w: host %q: scheme must be https or http", ErrInvalidConfig, cfg.Host)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	rt, err := cfg.transport()
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	c := &Client{base: u, hc: &http.Client{Transport: rt}, timeout: cfg.Timeout}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	qps, burst := cfg.QPS, cfg.Burst
	if qps == 0 {
		qps = 20
	}
	if burst <= 0 {
		burst = 40
	}
	if qps > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(qps), burst)
	}
	return c, nil
}

// Host returns the API server's base URL.
func (c *Client) Host() string { return c.base.String() }

// Close releases idle connections. Open watches end when their contexts do.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// request is one API call: which object(s), the verb, and the body.
type request struct {
	verb        string // RBAC verb, for errors
	method      string
	group       string
	version     string
	resource    string
	subresource string
	namespace   string
	name        string
	query       url.Values
	body        []byte
	contentType string
	watch       bool   // no client timeout: the server's timeoutSeconds ends it
	rawPath     string // Raw: the whole path, the fields above unused
}

// path returns the URL path of r:
// /api/v1/namespaces/NS/RESOURCE/NAME/SUB or /apis/GROUP/VERSION/...
func (r *request) path() string {
	if r.rawPath != "" {
		return r.rawPath
	}
	var b strings.Builder
	if r.group == "" {
		b.WriteString("/api/")
	} else {
		b.WriteString("/apis/")
		b.WriteString(r.group)
		b.WriteByte('/')
	}
	b.WriteString(r.version)
	if r.namespace != "" {
		b.WriteString("/namespaces/")
		b.WriteString(url.PathEscape(r.namespace))
	}
	b.WriteByte('/')
	b.WriteString(r.resource)
	if r.name != "" {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(r.name))
	}
	if r.subresource != "" {
		b.WriteByte('/')
		b.WriteString(r.subresource)
	}
	return b.String()
}

// resourceName is how errors name the resource: "pods", "nodes/status",
// "leases.coordination.k8s.io".
func (r *request) resourceName() string {
	if r.rawPath != "" {
		return r.rawPath
	}
	s := r.resource
	if r.subresource != "" {
		s += "/" + r.subresource
	}
	if r.group != "" {
		s += "." + r.group
	}
	return s
}

// do sends r and returns the response. Non-2xx responses are turned into
// *APIError. The caller closes the body. The returned cancel func releases
// the request's timeout and must be called after the body is consumed.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, context.CancelFunc, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, nil, fmt.Errorf("kube %s %s: rate limit: %w", r.verb, r.resourceName(), err)
		}
	}
	cancel := context.CancelFunc(func() {})
	if !r.watch {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	u := *c.base
	u.Path += r.path()
	u.RawQuery = r.query.Encode()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("kube %s %s: %w", r.verb, r.resourceName(), err)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("kube %s %s: %w", r.verb, r.resourceName(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := c.decodeError(r, resp)
		resp.Body.Close()
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

// decodeError builds the *APIError of a failed response: the server's
// Status when the body is one, else the body's text.
func (c *Client) decodeError(r *request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ae := &APIError{Verb: r.verb, Resource: r.resourceName(), Namespace: r.namespace, Name: r.name}
	var st Status
	if json.Unmarshal(b, &st) == nil && st.Kind == "Status" {
		ae.Status = st
	} else {
		ae.Status.Message = strings.TrimSpace(string(b))
		if len(ae.Status.Message) > 512 {
			ae.Status.Message = ae.Status.Message[:512] + "..."
		}
	}
	ae.Status.Code = int32(resp.StatusCode)
	ae.Status.Reason = ae.Reason()
	return ae
}

// call sends r and decodes a 2xx JSON body into out (nil: discard).
func (c *Client) call(ctx context.Context, r *request, out any) error {
	resp, cancel, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("kube %s %s: decode response: %w", r.verb, r.resourceName(), err)
	}
	return nil
}

// RawRequest is a request for an API path this package has no type for
// (RBAC objects, token requests, CRDs).
type RawRequest struct {
	Method      string // GET, POST, PUT, PATCH, DELETE
	Path        string // absolute API path, e.g. "/apis/rbac.authorization.k8s.io/v1/clusterroles"
	Query       url.Values
	Body        []byte // JSON unless ContentType says otherwise
	ContentType string
}

// Raw sends a request by path and returns the 2xx body. Failures are
// *APIError values like the typed verbs'.
func (c *Client) Raw(ctx context.Context, rr RawRequest) ([]byte, error) {
	verb := map[string]string{"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[rr.Method]
	r := &request{verb: verb, method: rr.Method, rawPath: rr.Path, query: rr.Query, body: rr.Body, contentType: rr.ContentType}
	resp, cancel, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("kube %s %s: read response: %w", verb, rr.Path, err)
	}
	return b, nil
}
