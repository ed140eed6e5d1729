package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veni-cni/veni/eni/sim"
)

// DefaultStartConcurrency is how many nodes come up at once when a Spec
// does not say.
const DefaultStartConcurrency = 8

// Spec is what a sim is built from: the cloud's topology and what every
// node gets. Up writes it to spec.json (0600: NodeConfig may hold keys) and
// the server reads it from there.
type Spec struct {
	Nodes        int               `json:"nodes"`               // node-1 … node-N
	InstanceType string            `json:"instanceType"`        // of every node: sets its ENI and IP quotas
	VSwitches    []sim.VSwitchSpec `json:"vswitches,omitempty"` // nil: sim.DefaultConfig's; nodes go round-robin
	AttachDelay  time.Duration     `json:"attachDelay"`         // how long an ENI stays Attaching
	// SecurityGroups are normal groups of the VPC besides
	// sim.DefaultSecurityGroupID (every node's), for eni_conf's
	// security_groups (NodeConfig) to name before any ENI is made.
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// Quotas are the account's API budgets (the zero value: no throttling).
	Quotas sim.Quotas `json:"quotas"`

	MinPoolSize int            `json:"minPoolSize"`          // min_pool_size of every node's veni.json
	MaxPoolSize int            `json:"maxPoolSize"`          // max_pool_size of every node's veni.json
	Datapath    string         `json:"datapath,omitempty"`   // datapath of every node's veni.json; "" leaves veni's default
	NodeConfig  map[string]any `json:"nodeConfig,omitempty"` // further veni.json fields, over the ones above

	Daemons            bool          `json:"daemons"`            // run a supervised "veni daemon" in every node
	DaemonSyncInterval time.Duration `json:"daemonSyncInterval"` // its --sync-interval
	// DaemonConflist leaves the node's CNI conflist to its daemon ("veni
	// daemon --cni-conf-dir"), which writes it once its first pass is done,
	// as veni's DaemonSet does: a node is Ready (NodeStatus.Ready) when it
	// is there. Otherwise the sim writes it with the node's files.
	DaemonConflist bool `json:"daemonConflist,omitempty"`

	StartConcurrency int `json:"startConcurrency,omitempty"` // nodes set up at once; 0: DefaultStartConcurrency

	// Kube, when set, is the API server the nodes' daemons join (each as a
	// Node named after its sim node; the sim does not create the Node
	// objects).
	Kube *KubeSpec `json:"kube,omitempty"`
}

// DefaultSpec is "veni sim up" without flags: two ecs.g7.xlarge nodes with
// daemons, pools of 2 to 5 idle addresses, the default region with the
// account's default API quotas.
func DefaultSpec() Spec {
	return Spec{
		Nodes:              2,
		InstanceType:       "ecs.g7.xlarge",
		AttachDelay:        sim.DefaultConfig().AttachDelay,
		Quotas:             sim.DefaultQuotas(),
		MinPoolSize:        2,
		MaxPoolSize:        5,
		Daemons:            true,
		DaemonSyncInterval: 10 * time.Second,
	}
}

// Validate checks what the cloud's own validation does not.
func (s Spec) Validate() error {
	if s.Nodes < 1 {
		return fmt.Errorf("--nodes %d: need at least 1", s.Nodes)
	}
	if s.MinPoolSize < 0 || s.MaxPoolSize < s.MinPoolSize {
		return fmt.Errorf("--min-pool-size %d --max-pool-size %d: need 0 <= min <= max", s.MinPoolSize, s.MaxPoolSize)
	}
	if s.DaemonConflist && !s.Daemons {
		return fmt.Errorf("--daemon-conflist needs --daemons")
	}
	if s.Daemons && s.DaemonSyncInterval <= 0 {
		return fmt.Errorf("--daemon-sync-interval %s: must be positive", s.DaemonSyncInterval)
	}
	if s.StartConcurrency < 0 {
		return fmt.Errorf("start concurrency %d: must not be negative", s.StartConcurrency)
	}
	return s.Quotas.Validate()
}

// CloudConfig is the cloud's configuration for the spec (credentials and
// fabric are the server's to add).
func (s Spec) CloudConfig() sim.Config {
	cfg := sim.DefaultConfig()
	cfg.AttachDelay = s.AttachDelay
	cfg.Quotas = s.Quotas
	if len(s.VSwitches) > 0 {
		cfg.VSwitches = s.VSwitches
	}
	if len(s.SecurityGroups) > 0 && cfg.SecurityGroups == nil {
		cfg.SecurityGroups = []string{sim.DefaultSecurityGroupID}
	}
	for _, sg := range s.SecurityGroups {
		if !slices.Contains(cfg.SecurityGroups, sg) {
			cfg.SecurityGroups = append(cfg.SecurityGroups, sg)
		}
	}
	return cfg
}

func (s Spec) concurrency() int {
	if s.StartConcurrency > 0 {
		return s.StartConcurrency
	}
	return DefaultStartConcurrency
}

// ReadSpec loads a spec.json that Up wrote.
func ReadSpec(path string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read sim spec: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse %s: %w", path, err)
	}
	return s, s.Validate()
}

// ParseVSwitches parses "id=cidr[@zone],..."; a vSwitch without a zone is
// in defaultZone.
func ParseVSwitches(s, defaultZone string) ([]sim.VSwitchSpec, error) {
	var out []sim.VSwitchSpec
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, rest, ok := strings.Cut(item, "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("--vswitches %q: want id=cidr[+ipv6cidr][@zone]", item)
		}
		cidrStr, zone, _ := strings.Cut(rest, "@")
		if zone == "" {
			zone = defaultZone
		}
		cidrStr, cidr6Str, dual := strings.Cut(cidrStr, "+")
		cidr, err := netip.ParsePrefix(cidrStr)
		if err != nil {
			return nil, fmt.Errorf("--vswitches %q: %w", item, err)
		}
		v := sim.VSwitchSpec{ID: id, ZoneID: zone, CIDR: cidr}
		if dual {
			// The sim's config validation checks it is a masked /64.
			if v.IPv6CIDR, err = netip.ParsePrefix(cidr6Str); err != nil {
				return nil, fmt.Errorf("--vswitches %q: ipv6: %w", item, err)
			}
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--vswitches %q: no vswitch", s)
	}
	return out, nil
}

// ParseQuotas applies --api-quota ACTION=N overrides to q (N calls per
// window; 0 lifts the action's own budget).
func ParseQuotas(q sim.Quotas, kvs []string) (sim.Quotas, error) {
	if len(kvs) == 0 {
		return q, nil
	}
	per := maps.Clone(q.PerAPI)
	if per == nil {
		per = map[string]int{}
	}
	for _, kv := range kvs {
		action, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || action == "" || err != nil || n < 0 {
			return q, fmt.Errorf("--api-quota %q: want ACTION=N with N >= 0", kv)
		}
		if n == 0 {
			delete(per, action)
			continue
		}
		per[action] = n
	}
	q.PerAPI = per
	return q, q.Validate()
}

// ParseNodeConfig parses --node-config key=value pairs; a value that is
// valid JSON (a number, true, a list) is taken as such, anything else as a
// string.
func ParseNodeConfig(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--node-config %q: want key=value", kv)
		}
		var parsed any
		if err := json.Unmarshal([]byte(v), &parsed); err != nil {
			parsed = v
		}
		out[k] = parsed
	}
	return out, nil
}
