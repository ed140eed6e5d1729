package eni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMetadataURL is the instance metadata service of every ECS instance.
const DefaultMetadataURL = "http://100.100.100.200"

// Headers of the hardened ("IMDSv2"-like) metadata mode.
const (
	metadataTokenHeader    = "X-aliyun-ecs-metadata-token"
	metadataTokenTTLHeader = "X-aliyun-ecs-metadata-token-ttl-seconds"
	metadataTokenTTL       = 6 * time.Hour
)

// Metadata reads the instance metadata service. It uses the hardened token
// flow when the server offers it and plain GETs otherwise. Every request is
// short and retried a few times, because the real service does time out
// under load (chaos-mesh#3599 broke Terway's IP allocation that way).
// It is safe for concurrent use.
type Metadata struct {
	base   string
	client *http.Client

	// Timeout bounds one request; Attempts is how many tries a read gets.
	Timeout  time.Duration
	Attempts int

	mu          sync.Mutex
	token       string
	tokenExpiry time.Time
	noToken     bool // the server does not offer tokens: plain GETs
}

// MetadataENI is what the metadata service knows about one attached ENI.
type MetadataENI struct {
	ID          string
	MAC         net.HardwareAddr
	PrimaryIP   netip.Addr
	PrivateIPs  []netip.Addr // primary first when the service lists it
	VSwitchID   string
	VSwitchCIDR netip.Prefix
	Gateway     netip.Addr
}

// NewMetadata returns a client for the metadata service at baseURL (empty
// means DefaultMetadataURL). A nil httpClient gets one that never uses a
// proxy: the service is link-local to the instance.
func NewMetadata(baseURL string, httpClient *http.Client) *Metadata {
	if baseURL == "" {
		baseURL = DefaultMetadataURL
	}
	if httpClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		httpClient = &http.Client{Transport: tr}
	}
	return &Metadata{
		base:     strings.TrimRight(baseURL, "/"),
		client:   httpClient,
		Timeout:  2 * time.Second,
		Attempts: 3,
	}
}

// InstanceID returns the id of this ECS instance ("i-...").
func (m *Metadata) InstanceID(ctx context.Context) (string, error) {
	return m.Get(ctx, "instance-id")
}

// RegionID returns the instance's region ("cn-hangzhou").
func (m *Metadata) RegionID(ctx context.Context) (string, error) {
	return m.Get(ctx, "region-id")
}

// ZoneID returns the instance's zone ("cn-hangzhou-k").
func (m *Metadata) ZoneID(ctx context.Context) (string, error) {
	return m.Get(ctx, "zone-id")
}

// VPCID returns the instance's VPC.
func (m *Metadata) VPCID(ctx context.Context) (string, error) {
	return m.Get(ctx, "vpc-id")
}

// VSwitchID returns the vSwitch of the instance's primary ENI.
func (m *Metadata) VSwitchID(ctx context.Context) (string, error) {
	return m.Get(ctx, "vswitch-id")
}

// InstanceType returns the instance type ("ecs.g7.large").
func (m *Metadata) InstanceType(ctx context.Context) (string, error) {
	return m.Get(ctx, "instance/instance-type")
}

// PrimaryMAC returns the MAC of the primary ENI.
func (m *Metadata) PrimaryMAC(ctx context.Context) (net.HardwareAddr, error) {
	s, err := m.Get(ctx, "mac")
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("metadata mac: %w", err)
	}
	return mac, nil
}

// MACs returns the MACs of every ENI attached to the instance, as the
// service lists them ("mac/" per line).
func (m *Metadata) MACs(ctx context.Context) ([]net.HardwareAddr, error) {
	s, err := m.Get(ctx, "network/interfaces/macs/")
	if err != nil {
		return nil, err
	}
	var out []net.HardwareAddr
	for line := range strings.Lines(s) {
		line = strings.TrimSuffix(strings.TrimSpace(line), "/")
		if line == "" {
			continue
		}
		mac, err := net.ParseMAC(line)
		if err != nil {
			return out, fmt.Errorf("metadata macs: %w", err)
		}
		out = append(out, mac)
	}
	return out, nil
}

// ENI returns what the service knows about the ENI with this MAC. Right
// after an attach the service may not list it yet: that is an error
// wrapping ErrNotFound, and callers wait and ask again.
func (m *Metadata) ENI(ctx context.Context, mac net.HardwareAddr) (MetadataENI, error) {
	e := MetadataENI{MAC: mac}
	dir := "network/interfaces/macs/" + mac.String() + "/"
	get := func(name string) (string, error) { return m.Get(ctx, dir+name) }
	var err error
	if e.ID, err = get("network-interface-id"); err != nil {
		return e, err
	}
	if e.VSwitchID, err = get("vswitch-id"); err != nil {
		return e, err
	}
	s, err := get("primary-ip-address")
	if err != nil {
		return e, err
	}
	if e.PrimaryIP, err = netip.ParseAddr(s); err != nil {
		return e, fmt.Errorf("metadata eni %s primary ip: %w", mac, err)
	}
	if s, err = get("vswitch-cidr-block"); err != nil {
		return e, err
	}
	if e.VSwitchCIDR, err = netip.ParsePrefix(s); err != nil {
		return e, fmt.Errorf("metadata eni %s vswitch cidr: %w", mac, err)
	}
	if s, err = get("gateway"); err != nil {
		return e, err
	}
	if e.Gateway, err = netip.ParseAddr(s); err != nil {
		return e, fmt.Errorf("metadata eni %s gateway: %w", mac, err)
	}
	if s, err = get("private-ipv4s"); err != nil {
		return e, err
	}
	var ips []string
	if err := json.Unmarshal([]byte(s), &ips); err != nil {
		return e, fmt.Errorf("metadata eni %s private-ipv4s: %w (want a JSON array)", mac, err)
	}
	if e.PrivateIPs, err = parseAddrs(ips); err != nil {
		return e, fmt.Errorf("metadata eni %s private-ipv4s: %w", mac, err)
	}
	return e, nil
}

// MetadataIPv6 is what the metadata service knows about one ENI's IPv6.
type MetadataIPv6 struct {
	IPs         []netip.Addr // ipv6s
	Gateway     netip.Addr   // ipv6-gateway
	VSwitchCIDR netip.Prefix // vswitch-ipv6-cidr-block
}

// IPv6 returns the IPv6 keys of the ENI with this MAC. It is apart from
// ENI so that IPv4-only nodes pay no extra requests. When the ENI's
// vSwitch has no IPv6 the service has none of the keys: that is an error
// wrapping ErrNotFound.
func (m *Metadata) IPv6(ctx context.Context, mac net.HardwareAddr) (MetadataIPv6, error) {
	var v MetadataIPv6
	dir := "network/interfaces/macs/" + mac.String() + "/"
	s, err := m.Get(ctx, dir+"vswitch-ipv6-cidr-block")
	if err != nil {
		return v, err
	}
	if v.VSwitchCIDR, err = netip.ParsePrefix(s); err != nil {
		return v, fmt.Errorf("metadata eni %s vswitch ipv6 cidr: %w", mac, err)
	}
	if s, err = m.Get(ctx, dir+"ipv6-gateway"); err != nil {
		return v, err
	}
	if v.Gateway, err = netip.ParseAddr(s); err != nil {
		return v, fmt.Errorf("metadata eni %s ipv6 gateway: %w", mac, err)
	}
	if s, err = m.Get(ctx, dir+"ipv6s"); err != nil {
		return v, err
	}
	var ips []string
	if err := json.Unmarshal([]byte(s), &ips); err != nil {
		return v, fmt.Errorf("metadata eni %s ipv6s: %w (want a JSON array)", mac, err)
	}
	if v.IPs, err = parseAddrs(ips); err != nil {
		return v, fmt.Errorf("metadata eni %s ipv6s: %w", mac, err)
	}
	return v, nil
}

// Attached lists every ENI attached to the instance as the service sees
// it. It costs no OpenAPI call, which is why the node daemon compares it
// with the store before it describes ENIs through the OpenAPI.
func (m *Metadata) Attached(ctx context.Context) ([]MetadataENI, error) {
	macs, err := m.MACs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]MetadataENI, 0, len(macs))
	for _, mac := range macs {
		e, err := m.ENI(ctx, mac)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Get reads /latest/meta-data/<path> and returns it trimmed. A path the
// service does not know is an error wrapping ErrNotFound.
func (m *Metadata) Get(ctx context.Context, path string) (string, error) {
	var err error
	for n := 1; n <= max(1, m.Attempts); n++ {
		var body string
		body, err = m.getOnce(ctx, path)
		if err == nil {
			return strings.TrimSpace(body), nil
		}
		if errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			break
		}
		if serr := sleepCtx(ctx, time.Duration(n)*100*time.Millisecond); serr != nil {
			break
		}
	}
	return "", fmt.Errorf("metadata %s: %w", path, err)
}

func (m *Metadata) getOnce(ctx context.Context, path string) (string, error) {
	token, err := m.ensureToken(ctx)
	if err != nil {
		return "", err
	}
	status, body, err := m.send(ctx, http.MethodGet, "/latest/meta-data/"+path, token)
	if err != nil {
		return "", err
	}
	switch {
	case status == http.StatusOK:
		return body, nil
	case status == http.StatusNotFound:
		return "", ErrNotFound
	case status == http.StatusUnauthorized && token != "":
		// The token expired early (the server restarted): take a new one.
		m.mu.Lock()
		m.token = ""
		m.mu.Unlock()
		return "", fmt.Errorf("token rejected (http %d)", status)
	}
	return "", fmt.Errorf("http %d: %s", status, strings.TrimSpace(body))
}

// ensureToken returns a valid session token, or "" when the server does not
// offer the hardened mode.
func (m *Metadata) ensureToken(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.noToken {
		return "", nil
	}
	if m.token != "" && time.Now().Before(m.tokenExpiry) {
		return m.token, nil
	}
	status, body, err := m.send(ctx, http.MethodPut, "/latest/api/token", "")
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	switch {
	case status == http.StatusOK && strings.TrimSpace(body) != "":
		m.token = strings.TrimSpace(body)
		// Renew a minute early so a request never carries a token that
		// expires in flight.
		m.tokenExpiry = time.Now().Add(metadataTokenTTL - time.Minute)
		return m.token, nil
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed,
		status == http.StatusForbidden, status == http.StatusNotImplemented:
		m.noToken = true
		return "", nil
	}
	return "", fmt.Errorf("token: http %d", status)
}

func (m *Metadata) send(ctx context.Context, method, path, token string) (int, string, error) {
	rctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, m.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	if method == http.MethodPut {
		req.Header.Set(metadataTokenTTLHeader, strconv.Itoa(int(metadataTokenTTL.Seconds())))
	}
	if token != "" {
		req.Header.Set(metadataTokenHeader, token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(body), nil
}
