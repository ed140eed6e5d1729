package config

import (
	"net/netip"
	"strings"
)

// Values of the datapath field.
const (
	// DatapathAuto takes the eBPF fast path when the kernel offers it and
	// the plain datapath otherwise. It is the default.
	DatapathAuto = "auto"
	// DatapathEBPF asks for the eBPF fast path. A kernel without it still
	// gets the plain datapath (an ADD never fails for want of eBPF); status
	// says why.
	DatapathEBPF = "ebpf"
	// DatapathPlain is veth plus policy routing through the host stack,
	// with no eBPF.
	DatapathPlain = "plain"
	// datapathVeth is what veni called the plain datapath before the fast
	// path existed; configs that say it keep working.
	datapathVeth = "veth"
)

// DatapathMode returns the configured datapath as DatapathAuto,
// DatapathEBPF or DatapathPlain.
func (c Config) DatapathMode() string {
	switch c.Datapath {
	case "", DatapathAuto:
		return DatapathAuto
	case datapathVeth:
		return DatapathPlain
	}
	return c.Datapath
}

// ServicePrefixes returns service_cidr as prefixes (both families when the
// cluster is dual-stack). Entries that do not parse are skipped; Validate
// reports them.
func (c Config) ServicePrefixes() []netip.Prefix {
	if c.ServiceCIDR == "" {
		return nil
	}
	return parsePrefixes(strings.Split(c.ServiceCIDR, ","))
}

// HostStackPrefixes returns host_stack_cidrs as prefixes, skipping entries
// that do not parse (Validate reports them).
func (c Config) HostStackPrefixes() []netip.Prefix {
	return parsePrefixes(c.HostStackCIDRs)
}

func parsePrefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}
