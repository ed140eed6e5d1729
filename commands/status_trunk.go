package commands

import (
	"net/netip"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/datapath"
	"github.com/veni-cni/veni/ebpf/vlan"
	"github.com/veni-cni/veni/store"
)

// statusTrunk is the node's trunk and its members, as "veni status" shows
// them; nil on a node without a trunk.
type statusTrunk struct {
	ID         string         `json:"id"`
	MaxMembers int            `json:"maxMembers"`
	Members    []statusMember `json:"members,omitempty"`
	TagDir     string         `json:"tagDir"` // the VLAN tagger's pins
}

type statusMember struct {
	ID     string     `json:"id"`
	VLANID int        `json:"vlanId"`
	IP     netip.Addr `json:"ip"`
	Pod    string     `json:"pod"`    // "" while idle
	Tagged bool       `json:"tagged"` // the tagger carries IP with VLANID
	Fixed  bool       `json:"fixed,omitempty"`
	Kept   bool       `json:"kept,omitempty"` // fixed, its pod gone: kept for it (untagged) until the daemon parks it
}

// gatherTrunk reads the trunk from the listing and the tagger's pins, and
// says what is wrong: a held member whose address the trunk does not tag.
func gatherTrunk(l ipamListing, cfg config.Config, info store.NodeInfo, problem func(string, ...any)) *statusTrunk {
	var t *statusTrunk
	for _, e := range l.ENIs {
		if e.Kind == store.ENITrunk {
			t = &statusTrunk{ID: e.ID, MaxMembers: info.MemberENIs}
		}
	}
	if t == nil {
		if cfg.Trunking() && info.TrunkSupported {
			problem("enable_eni_trunking is on and the node has no trunk ENI yet (the first member pod's ADD makes it, when an ENI slot is free)")
		}
		return nil
	}
	tagged := map[netip.Addr]int{}
	if dir, err := datapath.VLANPinDir(info.InstanceID); err == nil {
		t.TagDir = dir
		if tagged, err = vlan.PinnedMembers(dir); err != nil {
			problem("read the trunk's VLAN tags: %v", err)
		}
	}
	for _, e := range l.ENIs {
		if e.Kind != store.ENIMember {
			continue
		}
		m := statusMember{ID: e.ID, VLANID: e.VLANID, IP: e.PrimaryIP, Pod: e.Pod, Tagged: tagged[e.PrimaryIP] == e.VLANID, Fixed: e.Fixed != nil, Kept: e.Kept()}
		if m.Pod != "" && !m.Kept && !m.Tagged {
			problem("member %s of pod %s (%s) is not tagged with vlan %d on the trunk: its traffic is dropped by the VPC (DEL and ADD the pod again)", e.ID, e.Pod, e.PrimaryIP, e.VLANID)
		}
		t.Members = append(t.Members, m)
	}
	return t
}

func printTrunk(p *errWriter, t *statusTrunk) {
	if t == nil {
		return
	}
	p.printf("trunk     %s: %d of %d member ENIs\n", t.ID, len(t.Members), t.MaxMembers)
	for _, m := range t.Members {
		pod, tag := m.Pod, "tagged"
		if pod == "" {
			pod = "idle"
		}
		if !m.Tagged {
			tag = "not tagged"
		}
		switch {
		case m.Kept:
			pod, tag = "kept for "+pod, "fixed, pod gone"
		case m.Fixed:
			tag += ", fixed"
		}
		p.printf("  member  %s vlan %d %s %s (%s)\n", m.ID, m.VLANID, m.IP, pod, tag)
	}
}
