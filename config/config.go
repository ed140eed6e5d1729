package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads from JSON as a Go duration string
// ("10m", "90s") or as a number of seconds, the two forms eni_conf files use.
type Duration time.Duration

// UnmarshalJSON accepts "10m" or 600.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if s, err := strconv.Unquote(string(b)); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a string like \"10m\" or seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Selection policies.
const (
	VSwitchRandom  = "random"  // vswitch_selection_policy: shuffle candidates
	VSwitchOrdered = "ordered" // vswitch_selection_policy: most free IPs first
	ENIMostIPs     = "most_ips"
	ENILeastIPs    = "least_ips"
)

// Config is the node's IPAM and cloud configuration. Fields that exist in
// Terway's eni_conf keep its JSON names and meaning, so an existing
// eni-config ConfigMap works unchanged; the rest are veni's own.
type Config struct {
	// Terway eni_conf fields veni implements or passes to the cloud client.
	Version          string              `json:"version,omitempty"`
	AccessKey        string              `json:"access_key,omitempty"`
	AccessSecret     string              `json:"access_secret,omitempty"`
	CredentialPath   string              `json:"credential_path,omitempty"`
	RegionID         string              `json:"region_id,omitempty"`
	ServiceCIDR      string              `json:"service_cidr,omitempty"`
	VSwitches        map[string][]string `json:"vswitches,omitempty"` // zone → vSwitch ids
	SecurityGroup    string              `json:"security_group,omitempty"`
	SecurityGroups   []string            `json:"security_groups,omitempty"`
	ResourceGroupID  string              `json:"resource_group_id,omitempty"`
	ENITags          map[string]string   `json:"eni_tags,omitempty"`       // added to every ENI veni creates
	ENITagFilter     map[string]string   `json:"eni_tag_filter,omitempty"` // adopt only attached ENIs with these tags
	MaxPoolSize      int                 `json:"max_pool_size"`
	MinPoolSize      int                 `json:"min_pool_size"`
	IPWarmUpSize     int                 `json:"ip_warm_up_size,omitempty"`
	IdleReclaimAfter Duration            `json:"idle_ip_reclaim_after,omitempty"`
	IdleReclaimEvery Duration            `json:"idle_ip_reclaim_interval,omitempty"`
	IdleReclaimBatch int                 `json:"idle_ip_reclaim_batch_size,omitempty"`
	MinENI           int                 `json:"min_eni,omitempty"`
	MaxENI           int                 `json:"max_eni,omitempty"` // cap on secondary ENIs; 0: the instance type's limit
	VSwitchPolicy    string              `json:"vswitch_selection_policy,omitempty"`
	ENIPolicy        string              `json:"eni_selection_policy,omitempty"`
	IPStack          string              `json:"ip_stack,omitempty"`
	RateLimit        map[string]int      `json:"rate_limit,omitempty"` // OpenAPI action → calls per minute, for the cloud client

	// EnableIPPrefix is prefix mode: the pool's cloud unit is a delegated
	// /28 (16 pod addresses, one of the ENI's address slots) instead of a
	// secondary IP. A node keeps the mode its store was first filled in
	// (Terway: PrefixModeImmutable). Terway writes the switch as a boolean
	// or as a string.
	EnableIPPrefix BoolStr `json:"enable_ip_prefix,omitempty"`
	// IPv4PrefixCount is, in prefix mode, how many /28s the node keeps
	// delegated at least, free or not (a floor like ip_warm_up_size, in
	// prefixes); 0 means as many as min_pool_size and the pods need.
	IPv4PrefixCount int `json:"ipv4_prefix_count,omitempty"`
	// IPv6PrefixCount is Terway's /80s per ENI for an IPv6-only node in
	// prefix mode, 0 or 1. In prefix mode every ENI of a node whose pods
	// get an IPv6 has exactly one /80 (Terway's cap; dual stack gets it
	// without the key), so 1 says what 0 does: an IPv6-only pod has no
	// other address to get. Set on any other node it is refused.
	IPv6PrefixCount int `json:"ipv6_prefix_count,omitempty"`
	// EnableENITrunking gives the node a trunk ENI (on instance types
	// with EniTrunkSupported) that serves shared pods like any ENI and
	// carries member ENIs, one per pod that asks for its own network
	// (PodNetworking), tagged with their VLAN IDs. Ignored, as by Terway,
	// where the type has no member ENIs.
	EnableENITrunking BoolStr `json:"enable_eni_trunking,omitempty"`

	// ExclusiveENIType "eniOnly" is exclusive ENI mode: every pod gets an
	// ENI of its own (Terway's node label
	// k8s.aliyun.com/exclusive-mode-eni-type, which the daemon turns into
	// this field). min_pool_size and max_pool_size then count warm ENIs.
	// A node keeps the mode its store was first filled in.
	ExclusiveENIType string `json:"exclusive_eni_type,omitempty"`

	// veni's own fields.
	RAMRole        string   `json:"ram_role,omitempty"`         // instance RAM role for cloud credentials: "" auto (when nothing else is configured), a role name, or "disabled"
	Endpoint       string   `json:"endpoint,omitempty"`         // OpenAPI endpoint override (the simulator)
	Scheme         string   `json:"scheme,omitempty"`           // "https" (default) or "http"
	MetadataURL    string   `json:"metadata_url,omitempty"`     // default http://100.100.100.200
	StorePath      string   `json:"store_path,omitempty"`       // default store.DefaultPath
	Datapath       string   `json:"datapath,omitempty"`         // "auto" (default), "ebpf" or "plain"; "veth" means plain
	EBPFPodHook    string   `json:"ebpf_pod_hook,omitempty"`    // "tc" (default) or "tcx": how the fast path hooks each pod's veth
	HostStackCIDRs []string `json:"host_stack_cidrs,omitempty"` // Terway's CNI key: destinations pods reach through the host stack (node-local DNS)
	AllocWait      Duration `json:"alloc_wait,omitempty"`       // how long a CNI ADD waits for the pool to grow
	AttachTimeout  Duration `json:"attach_timeout,omitempty"`
	LeaseTTL       Duration `json:"lease_ttl,omitempty"` // the allocator lease; must outlast one pool growth
	PollInterval   Duration `json:"poll_interval,omitempty"`
	VSwitchBackoff Duration `json:"vswitch_backoff,omitempty"`   // after "vSwitch out of addresses"
	QuotaBackoff   Duration `json:"eni_quota_backoff,omitempty"` // after "quota exceeded"
	GCGrace        Duration `json:"gc_grace,omitempty"`          // a reservation younger than this is never collected
	// FixedENIHold is how long the ENI of a pod whose PodNetworking asks
	// for a fixed IP (allocationType Fixed) stays attached to its node
	// once the pod is gone, for the pod recreated on the same node to
	// take it back with no cloud call; then the daemon detaches it, and
	// any node of the zone can attach it for the pod.
	FixedENIHold Duration `json:"fixed_eni_hold,omitempty"`
	// CloudSyncInterval is how often the daemon describes its ENIs through
	// the OpenAPI even when instance metadata agrees with the store (a
	// safety net; Terway's controller uses 12-24 h). Between, it reads
	// metadata only and calls the API when the two disagree.
	CloudSyncInterval Duration `json:"cloud_sync_interval,omitempty"`
	MetricsAddress    string   `json:"metrics_address,omitempty"` // telemetry: where the daemon serves metrics; see ValidMetricsAddress

	// NetworkPolicy turns veni's NetworkPolicy enforcer on or off; unset
	// means on (PolicyEnabled). DisableNetworkPolicy is Terway's field
	// for the same switch, inverted, which Terway writes as a string
	// ("true"/"false"); a boolean is accepted too. Both may be given if
	// they agree.
	NetworkPolicy        *bool    `json:"network_policy,omitempty"`
	DisableNetworkPolicy *BoolStr `json:"disable_network_policy,omitempty"`
	// PolicyManifestDir is a folder of YAML/JSON manifests (NetworkPolicies,
	// Namespaces, Pods' labels and ports) the daemon enforces besides
	// (standalone nodes, the simulator: instead of) the API server's.
	PolicyManifestDir string `json:"policy_manifest_dir,omitempty"`
}

// BoolStr is a boolean that reads from JSON as true/false or as the
// strings "true"/"false", the way Terway's eni_conf writes its switches.
type BoolStr bool

// UnmarshalJSON accepts true, false, "true" and "false".
func (b *BoolStr) UnmarshalJSON(data []byte) error {
	s := string(data)
	if u, err := strconv.Unquote(s); err == nil {
		s = u
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		*b = true
	case "false":
		*b = false
	default:
		return fmt.Errorf("%s: want true or false (or the strings \"true\", \"false\")", data)
	}
	return nil
}

// PolicyEnabled reports whether NetworkPolicy is enforced: network_policy
// when set, else the opposite of disable_network_policy when set, else
// true (Terway's default: policy on). Validate rejects the two disagreeing.
func (c Config) PolicyEnabled() bool {
	switch {
	case c.NetworkPolicy != nil:
		return *c.NetworkPolicy
	case c.DisableNetworkPolicy != nil:
		return !bool(*c.DisableNetworkPolicy)
	}
	return true
}

// Terway eni_conf fields veni reads without error but does not act on.
var ignoredTerwayFields = map[string]string{
	"eni_tag_block_list":             "",
	"idle_ip_reclaim_jitter_factor":  "",
	"ip_pool_sync_period":            "veni checks instance metadata on every pass and describes ENIs every cloud_sync_interval",
	"eni_cap_ratio":                  "",
	"eni_cap_shift":                  "",
	"enable_erdma":                   "",
	"ipam_type":                      "veni's IPAM is per node",
	"custom_stateful_workload_kinds": "",
	"backoff_override":               "use vswitch_backoff and eni_quota_backoff",
	"extra_routes":                   "",
	"disable_device_plugin":          "",
	"kube_client_qps":                "",
	"kube_client_burst":              "",
	"enable_patch_pod_ips":           "",
	"prefix":                         "",
}

// Defaults, as Terway's where the field is Terway's.
const (
	DefaultMaxPoolSize      = 5
	DefaultMinPoolSize      = 0
	DefaultIdleReclaimBatch = 5
	DefaultIdleReclaimEvery = 10 * time.Minute
	DefaultAllocWait        = 20 * time.Second
	DefaultAttachTimeout    = 60 * time.Second
	DefaultLeaseTTL         = 2 * time.Minute
	DefaultPollInterval     = 250 * time.Millisecond
	DefaultVSwitchBackoff   = 10 * time.Minute
	DefaultQuotaBackoff     = time.Minute
	DefaultGCGrace          = time.Minute
	DefaultFixedENIHold     = 10 * time.Second
	DefaultCloudSyncEvery   = 6 * time.Hour
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		MaxPoolSize:       DefaultMaxPoolSize,
		MinPoolSize:       DefaultMinPoolSize,
		IdleReclaimBatch:  DefaultIdleReclaimBatch,
		IdleReclaimEvery:  Duration(DefaultIdleReclaimEvery),
		VSwitchPolicy:     VSwitchRandom,
		ENIPolicy:         ENIMostIPs,
		IPStack:           "ipv4",
		Scheme:            "https",
		Datapath:          DatapathAuto,
		AllocWait:         Duration(DefaultAllocWait),
		AttachTimeout:     Duration(DefaultAttachTimeout),
		LeaseTTL:          Duration(DefaultLeaseTTL),
		PollInterval:      Duration(DefaultPollInterval),
		VSwitchBackoff:    Duration(DefaultVSwitchBackoff),
		QuotaBackoff:      Duration(DefaultQuotaBackoff),
		GCGrace:           Duration(DefaultGCGrace),
		FixedENIHold:      Duration(DefaultFixedENIHold),
		CloudSyncInterval: Duration(DefaultCloudSyncEvery),
	}
}

// Parse reads an eni_conf JSON document over DefaultConfig. It returns
// the config and notes for the caller to log: fields it does not know
// ("unknown field \"x\"") and Terway fields it accepts but does not act on.
// Unknown fields are reported, never silently dropped, and are not errors,
// so a newer Terway config still loads.
//
// May return an error wrapping ErrInvalid that names the field.
func Parse(b []byte) (Config, []string, error) {
	cfg := DefaultConfig()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return cfg, nil, fmt.Errorf("parse eni_conf: %w: %w", ErrInvalid, err)
	}
	known := jsonFieldNames(reflect.TypeFor[Config]())
	var notes []string
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if known[k] {
			continue
		}
		if why, ok := ignoredTerwayFields[k]; ok {
			note := fmt.Sprintf("field %q accepted but ignored", k)
			if why != "" {
				note += " (" + why + ")"
			}
			notes = append(notes, note)
			continue
		}
		notes = append(notes, fmt.Sprintf("unknown field %q", k))
	}
	for k, v := range raw {
		if !known[k] {
			continue
		}
		// One field at a time, so the error names the field.
		one, _ := json.Marshal(map[string]json.RawMessage{k: v})
		if err := json.Unmarshal(one, &cfg); err != nil {
			return cfg, notes, fmt.Errorf("eni_conf field %s: %w: %w", k, ErrInvalid, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, notes, err
	}
	return cfg, notes, nil
}

// Validate checks values and their relations.
//
// May return an error wrapping ErrInvalid that names the field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("eni_conf field %s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalid)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_pool_size", c.MaxPoolSize}, {"min_pool_size", c.MinPoolSize}, {"ip_warm_up_size", c.IPWarmUpSize},
		{"idle_ip_reclaim_batch_size", c.IdleReclaimBatch}, {"min_eni", c.MinENI}, {"max_eni", c.MaxENI},
	} {
		if f.v < 0 {
			return bad(f.name, "%d is negative", f.v)
		}
	}
	// Each duration has a range outside which the node breaks: a zero
	// poll_interval panics a ticker, a zero lease_ttl cancels every refill
	// at once, a zero alloc_wait or attach_timeout fails every cold ADD.
	for _, f := range []struct {
		name     string
		v        Duration
		min, max time.Duration
	}{
		{"idle_ip_reclaim_after", c.IdleReclaimAfter, 0, 24 * time.Hour},
		{"idle_ip_reclaim_interval", c.IdleReclaimEvery, time.Second, 24 * time.Hour},
		{"alloc_wait", c.AllocWait, time.Second, 10 * time.Minute},
		{"attach_timeout", c.AttachTimeout, time.Second, 10 * time.Minute},
		{"lease_ttl", c.LeaseTTL, 10 * time.Second, time.Hour},
		{"poll_interval", c.PollInterval, 10 * time.Millisecond, time.Minute},
		{"vswitch_backoff", c.VSwitchBackoff, time.Second, 24 * time.Hour},
		{"eni_quota_backoff", c.QuotaBackoff, time.Second, 24 * time.Hour},
		{"gc_grace", c.GCGrace, 0, time.Hour},
		{"fixed_eni_hold", c.FixedENIHold, 0, time.Hour},
		{"cloud_sync_interval", c.CloudSyncInterval, time.Second, 7 * 24 * time.Hour},
	} {
		if d := time.Duration(f.v); d < f.min || d > f.max {
			return bad(f.name, "%s is outside [%s, %s]", d, f.min, f.max)
		}
	}
	switch {
	case c.MinPoolSize > c.MaxPoolSize:
		return bad("min_pool_size", "%d is above max_pool_size %d", c.MinPoolSize, c.MaxPoolSize)
	case c.MaxENI > 0 && c.MinENI > c.MaxENI:
		return bad("min_eni", "%d is above max_eni %d", c.MinENI, c.MaxENI)
	case c.VSwitchPolicy != VSwitchRandom && c.VSwitchPolicy != VSwitchOrdered:
		return bad("vswitch_selection_policy", "%q is not random or ordered", c.VSwitchPolicy)
	case c.ENIPolicy != ENIMostIPs && c.ENIPolicy != ENILeastIPs:
		return bad("eni_selection_policy", "%q is not most_ips or least_ips", c.ENIPolicy)
	case c.IPStack != IPStackV4 && c.IPStack != IPStackDual && c.IPStack != IPStackV6:
		return bad("ip_stack", "%q is not ipv4, dual or ipv6", c.IPStack)
	case len(c.SecurityGroups) > 10:
		return bad("security_groups", "%d groups, at most 10", len(c.SecurityGroups))
	case c.Scheme != "http" && c.Scheme != "https":
		return bad("scheme", "%q is not http or https", c.Scheme)
	case !slices.Contains([]string{DatapathAuto, DatapathEBPF, DatapathPlain, datapathVeth, ""}, c.Datapath):
		return bad("datapath", "%q is not auto, ebpf or plain", c.Datapath)
	case c.Trunking() && c.IPStack != IPStackV4:
		// A member ENI would need its pod's IPv6 too, and the tagger and
		// the pod's routes would carry it: not built yet.
		return bad("enable_eni_trunking", "trunk members with ip_stack %s are not supported yet; use ip_stack ipv4 on trunk nodes", c.IPStack)
	case time.Duration(c.LeaseTTL) <= time.Duration(c.AttachTimeout):
		return bad("lease_ttl", "%s must outlast attach_timeout %s", time.Duration(c.LeaseTTL), time.Duration(c.AttachTimeout))
	}
	if err := c.validatePrefix(bad); err != nil {
		return err
	}
	if err := c.validateExclusive(bad); err != nil {
		return err
	}
	if c.ServiceCIDR != "" {
		// Dual-stack clusters list both families: "10.96.0.0/12,fd00::/108".
		for _, p := range strings.Split(c.ServiceCIDR, ",") {
			if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
				return bad("service_cidr", "%q is not a CIDR", p)
			}
		}
	}
	switch c.EBPFPodHook {
	case "", "tc", "tcx":
	default:
		return bad("ebpf_pod_hook", "%q: want tc or tcx", c.EBPFPodHook)
	}
	if c.NetworkPolicy != nil && c.DisableNetworkPolicy != nil && *c.NetworkPolicy == bool(*c.DisableNetworkPolicy) {
		return bad("network_policy", "%t contradicts disable_network_policy %t (Terway's name for the same switch, inverted): remove one of them",
			*c.NetworkPolicy, bool(*c.DisableNetworkPolicy))
	}
	if c.PolicyManifestDir != "" && !strings.HasPrefix(c.PolicyManifestDir, "/") {
		return bad("policy_manifest_dir", "%q is not an absolute path", c.PolicyManifestDir)
	}
	if err := ValidMetricsAddress(c.MetricsAddress); err != nil {
		return bad("metrics_address", "%v", err)
	}
	for _, p := range c.HostStackCIDRs {
		if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
			return bad("host_stack_cidrs", "%q is not a CIDR", p)
		}
	}
	return nil
}

// MaxIPv4PrefixCount bounds ipv4_prefix_count: more /28s than any
// instance type can hold (16 ENIs of 49 slots) is a typo, not a plan.
const MaxIPv4PrefixCount = 16 * 49

// PrefixMode reports whether the pool delegates /28 prefixes
// (enable_ip_prefix) instead of assigning secondary IPs.
func (c Config) PrefixMode() bool { return bool(c.EnableIPPrefix) }

// PoolMode names the pool's mode as the store records it: "prefix" or "ip".
func (c Config) PoolMode() string {
	if c.PrefixMode() {
		return PoolModePrefix
	}
	return PoolModeIP
}

// IP stacks, as ip_stack takes them (Terway's values) and the store
// records them.
const (
	IPStackV4   = "ipv4"
	IPStackDual = "dual" // one IPv4 and one IPv6 per pod, from the same ENI
	IPStackV6   = "ipv6" // one IPv6 per pod and no IPv4; the node and its ENIs keep their primary IPv4
)

// DualStack reports whether every pod gets an IPv6 next to its IPv4.
func (c Config) DualStack() bool { return c.IPStack == IPStackDual }

// IPv6Only reports whether pods get an IPv6 and no IPv4 (ip_stack ipv6).
func (c Config) IPv6Only() bool { return c.IPStack == IPStackV6 }

// WantsIPv6 reports whether pods get an IPv6 (ip_stack dual or ipv6): the
// node's ENIs must be on vSwitches with IPv6.
func (c Config) WantsIPv6() bool { return c.IPStack != IPStackV4 }

// Trunking reports whether enable_eni_trunking is on.
func (c Config) Trunking() bool { return bool(c.EnableENITrunking) }

// Pool modes, as Config.PoolMode returns them and the store records them.
const (
	PoolModeIP     = "ip"
	PoolModePrefix = "prefix"
)

func (c Config) validatePrefix(bad func(field, format string, args ...any) error) error {
	switch {
	case c.IPv4PrefixCount < 0:
		return bad("ipv4_prefix_count", "%d is negative", c.IPv4PrefixCount)
	case c.IPv4PrefixCount > MaxIPv4PrefixCount:
		return bad("ipv4_prefix_count", "%d is above %d, more /28s than any instance type holds", c.IPv4PrefixCount, MaxIPv4PrefixCount)
	case c.IPv4PrefixCount > 0 && !c.PrefixMode():
		return bad("ipv4_prefix_count", "%d is set but enable_ip_prefix is not true (prefixes are delegated only in prefix mode)", c.IPv4PrefixCount)
	case c.IPv4PrefixCount > 0 && c.IPv6Only():
		return bad("ipv4_prefix_count", "%d is set but ip_stack is ipv6: IPv6-only pods take no /28 (each ENI gets one /80)", c.IPv4PrefixCount)
	case c.IPv6PrefixCount < 0 || c.IPv6PrefixCount > 1:
		return bad("ipv6_prefix_count", "%d is not 0 or 1: an ENI gets at most one /80", c.IPv6PrefixCount)
	case c.IPv6PrefixCount > 0 && !(c.PrefixMode() && c.IPv6Only()):
		return bad("ipv6_prefix_count", "%d is set but the node is not IPv6-only in prefix mode (ip_stack ipv6 with enable_ip_prefix true; dual stack gets its /80 without it)", c.IPv6PrefixCount)
	}
	return nil
}

// SecurityGroupIDs returns security_groups plus security_group, without
// duplicates.
func (c Config) SecurityGroupIDs() []string {
	out := slices.Clone(c.SecurityGroups)
	if c.SecurityGroup != "" && !slices.Contains(out, c.SecurityGroup) {
		out = append([]string{c.SecurityGroup}, out...)
	}
	return out
}

func jsonFieldNames(t reflect.Type) map[string]bool {
	out := make(map[string]bool)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}
