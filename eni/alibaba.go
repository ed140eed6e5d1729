package eni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

// AlibabaOptions configure NewAlibabaClient.
type AlibabaOptions struct {
	// RegionID is the region the node runs in ("cn-hangzhou"). Required.
	RegionID string
	// Endpoint is host[:port] of the OpenAPI for both ECS and VPC. Empty
	// means the SDK's regional endpoints (ecs-cn-hangzhou.aliyuncs.com,
	// vpc.cn-hangzhou.aliyuncs.com, ...).
	Endpoint string
	// Scheme is "https" (default) or "http".
	Scheme string
	// Credentials sign every request unless CredentialProvider is set.
	Credentials Credentials
	// CredentialProvider, when set, is asked before every attempt for the
	// credentials to sign it with, so rotated STS tokens take effect on the
	// next request. It takes precedence over Credentials.
	CredentialProvider CredentialProvider
	// RateLimits override DefaultRateLimits per action (Action* constants).
	RateLimits map[string]RateLimit
	// Retry is the back-off after retryable errors; zero means
	// DefaultRetryPolicy.
	Retry RetryPolicy
	// CallTimeout bounds one HTTP attempt; zero means 10 s.
	CallTimeout time.Duration
	// PageSize is the number of ENIs asked per DescribeNetworkInterfaces
	// page; zero means 100, the API's maximum.
	PageSize int
	// Observe, when set, is called after every attempt with the action, the
	// result code ("OK", the API's error code, or a transport class) and
	// how long the attempt took. It is how a metrics exporter sees the cloud
	// (Terway's aliyun_openapi_latency); the client itself pulls in no
	// metrics library, so the CNI process pays no initialisation for one.
	Observe func(action, code string, took time.Duration)
	// Logger receives a debug line per retry; nil means slog.Default().
	Logger *slog.Logger
	// Transport carries the requests; nil means a transport cloned from
	// http.DefaultTransport (proxy from the environment, keep-alive).
	Transport http.RoundTripper
}

// AlibabaClient implements Client on the Alibaba Cloud ECS and VPC
// OpenAPI through alibaba-cloud-sdk-go. It is safe for concurrent use.
type AlibabaClient struct {
	opts      AlibabaOptions
	creds     CredentialProvider
	transport http.RoundTripper
	limiters  *limiters
	log       *slog.Logger

	sleep func(context.Context, time.Duration) error // replaced by tests
	rnd   func() float64

	endpointsOnce sync.Once
	endpoints     map[string]map[string]string // product → region → host

	limitsMu sync.Mutex
	limits   map[string]InstanceLimits // by instance type; they never change
}

var _ Client = (*AlibabaClient)(nil)

// validRegion accepts what region ids look like ("cn-hangzhou"). A plain
// loop, not a regexp: package init is paid by every CNI invocation.
func validRegion(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// NewAlibabaClient checks opts and returns a client. It does no network I/O
// and builds no SDK client: the CNI plugin constructs one on every ADD and
// must not pay for what it may never use.
func NewAlibabaClient(opts AlibabaOptions) (*AlibabaClient, error) {
	if !validRegion(opts.RegionID) {
		return nil, fmt.Errorf("alibaba client: region %q: %w", opts.RegionID, ErrInvalidParameter)
	}
	creds := opts.CredentialProvider
	if creds == nil {
		if err := opts.Credentials.validate(); err != nil {
			return nil, fmt.Errorf("alibaba client: credentials: %w", err)
		}
		creds = StaticCredentials(opts.Credentials)
	}
	switch strings.ToLower(opts.Scheme) {
	case "":
		opts.Scheme = "https"
	case "http", "https":
		opts.Scheme = strings.ToLower(opts.Scheme)
	default:
		return nil, fmt.Errorf("alibaba client: scheme %q: %w (want http or https)", opts.Scheme, ErrInvalidParameter)
	}
	if strings.Contains(opts.Endpoint, "/") {
		return nil, fmt.Errorf("alibaba client: endpoint %q: %w (want host[:port], no scheme or path)", opts.Endpoint, ErrInvalidParameter)
	}
	if opts.Retry == (RetryPolicy{}) {
		opts.Retry = DefaultRetryPolicy()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	c := &AlibabaClient{
		opts:      opts,
		creds:     creds,
		transport: opts.Transport,
		limiters:  newLimiters(opts.RateLimits),
		log:       opts.Logger,
		sleep:     sleepCtx,
		rnd:       jitter,
		limits:    make(map[string]InstanceLimits),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.transport == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return c, nil
}

// String describes the client without its credentials.
func (c *AlibabaClient) String() string {
	return fmt.Sprintf("alibaba client region=%s endpoint=%s scheme=%s", c.opts.RegionID, c.opts.Endpoint, c.opts.Scheme)
}

// LogValue is how slog prints the client: without its credentials.
func (c *AlibabaClient) LogValue() slog.Value {
	return slog.GroupValue(slog.String("region", c.opts.RegionID), slog.String("endpoint", c.opts.Endpoint))
}

// call runs one logical API call: it waits for the action's token, makes an
// attempt bounded by CallTimeout, classifies the answer and retries with
// back-off while the error is retryable and attempts remain.
func (c *AlibabaClient) call(ctx context.Context, action string, attempt func(context.Context) error) error {
	bucket := c.limiters.get(action)
	renewed := false
	for n := 1; ; n++ {
		if err := bucket.Wait(ctx); err != nil {
			return fmt.Errorf("%s: wait for rate limit: %w", action, err)
		}
		actx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		start := time.Now()
		err := classify(action, attempt(actx))
		cancel()
		if c.opts.Observe != nil {
			c.opts.Observe(action, metricCode(err), time.Since(start))
		}
		if err == nil {
			return nil
		}
		// A token the API no longer accepts is fetched anew once and the
		// call repeated at once: the provider's clock may trail the cloud's.
		if !renewed && tokenRefused(err) && c.creds.Invalidate() {
			renewed = true
			c.log.Info("cloud api refused the credentials; fetching new ones", "action", action, "err", err)
			n--
			continue
		}
		if n >= c.opts.Retry.attempts() || !retryable(err) || ctx.Err() != nil {
			var ae *APIError
			if !errors.As(err, &ae) {
				err = fmt.Errorf("%s: %w", action, err)
			}
			return err
		}
		delay := c.opts.Retry.Backoff(n, c.rnd)
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			// Alibaba refuses a throttled API for the rest of its window:
			// asking again before it ends only spends the account's calls.
			// Wait it out, spread over a second so nodes throttled together
			// do not all come back in the same instant; when the caller
			// cannot wait that long, give up now.
			delay = ae.RetryAfter + time.Duration(c.rnd()*float64(time.Second))
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				return err
			}
		}
		c.log.Debug("cloud api retry", "action", action, "attempt", n, "delay", delay, "err", err)
		if serr := c.sleep(ctx, delay); serr != nil {
			return fmt.Errorf("%s: retry cut short: %w", action, errors.Join(serr, err))
		}
	}
}

// tokenRefused reports whether the API refused an STS token as expired,
// malformed, missing or not matching its key.
func tokenRefused(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return strings.HasPrefix(ae.Code, "InvalidSecurityToken.") || ae.Code == "MissingSecurityToken" ||
		ae.Code == "InvalidAccessKeyId.NotFound"
}

// do sends one SDK request through call. The SDK client is built per
// attempt: sdk.Client writes its http.Client timeout and transport fields on
// every request, so sharing one across goroutines is a data race, and it
// has no context parameter, which the per-attempt transport supplies.
func (c *AlibabaClient) do(ctx context.Context, req requests.AcsRequest, resp responses.AcsResponse) error {
	return c.call(ctx, req.GetActionName(), func(actx context.Context) error {
		creds, err := c.creds.Credentials(actx)
		if err != nil {
			return &safeError{msg: "credentials: " + scrubText(err.Error()), cause: credentialCause(err)}
		}
		cfg := sdk.NewConfig()
		cfg.AutoRetry = false // call retries, with back-off and classification
		cfg.MaxRetryTime = 0
		cfg.Scheme = strings.ToUpper(c.opts.Scheme)
		cfg.UserAgent = "veni"
		cfg.Transport = ctxTransport{ctx: actx, base: c.transport}
		cfg.Timeout = c.opts.CallTimeout
		cl := &sdk.Client{}
		if err := cl.InitWithOptions(c.opts.RegionID, cfg, sdkCredentials{creds}); err != nil {
			return fmt.Errorf("init sdk client: %w", err)
		}
		if c.opts.Endpoint != "" {
			req.SetDomain(c.opts.Endpoint)
		} else {
			cl.EndpointMap = c.endpointMap(req.GetProduct())
			cl.EndpointType = "regional"
		}
		req.SetScheme(cfg.Scheme)
		req.SetReadTimeout(c.opts.CallTimeout)
		req.SetConnectTimeout(min(c.opts.CallTimeout, 5*time.Second))
		// The one place errors leave the SDK: nothing past here may carry
		// the signed URL or the credentials.
		err = sdkError(req.GetActionName(), cl.DoAction(req, resp), creds)
		var ae *APIError
		if errors.As(err, &ae) && errors.Is(ae, ErrThrottled) {
			ae.RetryAfter = throttleTimeLeft(resp.GetHttpHeaders())
		}
		return err
	})
}

// credentialCause keeps what a caller branches on from a credential
// provider's error (ErrNoCredentials, ErrInsecureCredentials, network
// errors of the metadata service, which are retried), and nothing else.
func credentialCause(err error) error {
	var keep []error
	for _, s := range []error{ErrNoCredentials, ErrInsecureCredentials, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, s) {
			keep = append(keep, s)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		keep = append(keep, ne)
	}
	return errors.Join(keep...)
}

// sdkCredentials hands one attempt's credentials to the SDK, which asks a
// credentials.CredentialsProvider for them when it signs the request.
type sdkCredentials struct{ c Credentials }

func (s sdkCredentials) GetCredentials() (*credentials.Credentials, error) {
	return &credentials.Credentials{
		AccessKeyId:     s.c.AccessKeyID,
		AccessKeySecret: s.c.AccessKeySecret,
		SecurityToken:   s.c.SecurityToken,
		ProviderName:    "veni",
	}, nil
}

func (sdkCredentials) GetProviderName() string { return "veni" }

// endpointMap returns the SDK's region → host table of a product. The SDK
// fills those tables lazily without a lock, so veni reads them once.
func (c *AlibabaClient) endpointMap(product string) map[string]string {
	c.endpointsOnce.Do(func() {
		c.endpoints = map[string]map[string]string{
			"ecs": ecs.GetEndpointMap(),
			"vpc": vpc.GetEndpointMap(),
		}
	})
	return c.endpoints[strings.ToLower(product)]
}

// ctxTransport binds one attempt's context to the requests the SDK builds
// without one, so cancelling the caller's context aborts the HTTP exchange.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}
