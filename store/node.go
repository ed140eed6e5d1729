package store

import (
	"net/netip"
	"time"
)

// keyNode is the cached NodeInfo in bucketMeta.
var keyNode = []byte("node")

// NodeInfo is what this node is, as instance metadata and DescribeInstanceTypes
// said when it was last asked. It is cached so that a CNI ADD never has to
// ask: the warm path reads it with the rest of its first transaction.
type NodeInfo struct {
	InstanceID       string       `json:"instanceID"`
	InstanceType     string       `json:"instanceType"`
	RegionID         string       `json:"regionID"`
	ZoneID           string       `json:"zoneID"`
	VPCID            string       `json:"vpcID,omitempty"`
	PrimaryENIID     string       `json:"primaryENIID"`
	PrimaryMAC       string       `json:"primaryMAC"`
	PrimaryIP        netip.Addr   `json:"primaryIP"`
	VSwitchID        string       `json:"vswitchID"` // the primary ENI's
	SecurityGroupIDs []string     `json:"securityGroups,omitempty"`
	ENIs             int          `json:"enis"`       // ENI quota, primary included
	IPv4PerENI       int          `json:"ipv4PerENI"` // primary address included
	IPv6PerENI       int          `json:"ipv6PerENI,omitempty"`
	TrunkSupported   bool         `json:"trunkSupported,omitempty"`
	MemberENIs       int          `json:"memberENIs,omitempty"`
	UpdatedAt        time.Time    `json:"updatedAt"`
	VSwitchCIDR      netip.Prefix `json:"vswitchCIDR,omitzero"`
}

// Node returns the cached node facts, or an error wrapping ErrNotFound when
// nobody has recorded them yet.
func (t *ReadTx) Node() (NodeInfo, error) {
	return get[NodeInfo](t, bucketMeta, keyNode, "node")
}

// PutNode replaces the cached node facts.
func (t *WriteTx) PutNode(n NodeInfo) error {
	return put(t, bucketMeta, keyNode, n)
}
