package config

// ExclusiveENIOnly is the value of exclusive_eni_type (and of the node label
// k8s.aliyun.com/exclusive-mode-eni-type, Terway's) that puts a node in
// exclusive ENI mode: every pod gets an ENI of its own, moved into its
// network namespace.
const ExclusiveENIOnly = "eniOnly"

// ENI modes, as Config.ENIMode returns them and the store records them.
const (
	ENIModeShared    = "shared"    // pods share the node's ENIs, one address each
	ENIModeExclusive = "exclusive" // one ENI per pod (exclusive_eni_type eniOnly)
)

// ExclusiveENI reports whether the node is in exclusive ENI mode.
func (c Config) ExclusiveENI() bool { return c.ExclusiveENIType == ExclusiveENIOnly }

// ENIMode names the node's ENI mode as the store records it.
func (c Config) ENIMode() string {
	if c.ExclusiveENI() {
		return ENIModeExclusive
	}
	return ENIModeShared
}

func (c Config) validateExclusive(bad func(field, format string, args ...any) error) error {
	switch {
	case c.ExclusiveENIType != "" && c.ExclusiveENIType != ExclusiveENIOnly:
		return bad("exclusive_eni_type", "%q: want %q or nothing", c.ExclusiveENIType, ExclusiveENIOnly)
	case c.ExclusiveENI() && c.PrefixMode():
		return bad("exclusive_eni_type", "an exclusive ENI carries one pod address; enable_ip_prefix cannot be set with it")
	case c.ExclusiveENI() && c.IPStack != IPStackV4:
		return bad("exclusive_eni_type", "exclusive ENIs are IPv4 only in veni; ip_stack %q cannot be set with it", c.IPStack)
	}
	return nil
}
