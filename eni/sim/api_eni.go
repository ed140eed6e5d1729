package sim

import (
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// JSON shapes of the ENI answers. Field names are the wire names the SDK's
// response structs (services/ecs) decode.

type privateIPSetJSON struct {
	PrivateIpAddress string `json:"PrivateIpAddress"`
	Primary          bool   `json:"Primary"`
}

type tagJSON struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

type attachmentJSON struct {
	InstanceId                string         `json:"InstanceId"`
	DeviceIndex               int            `json:"DeviceIndex"`
	TrunkNetworkInterfaceId   string         `json:"TrunkNetworkInterfaceId,omitempty"`
	MemberNetworkInterfaceIds *memberIDsJSON `json:"MemberNetworkInterfaceIds,omitempty"`
}

type memberIDsJSON struct {
	MemberNetworkInterfaceId []string `json:"MemberNetworkInterfaceId"`
}

type ipv4PrefixJSON struct {
	Ipv4Prefix string `json:"Ipv4Prefix"`
}

type ipv6PrefixJSON struct {
	Ipv6Prefix string `json:"Ipv6Prefix"`
}

type ipv6SetJSON struct {
	Ipv6Address string `json:"Ipv6Address"`
}

type eniJSON struct {
	NetworkInterfaceId   string `json:"NetworkInterfaceId"`
	NetworkInterfaceName string `json:"NetworkInterfaceName"`
	Type                 string `json:"Type"`
	Status               string `json:"Status"`
	MacAddress           string `json:"MacAddress"`
	PrivateIpAddress     string `json:"PrivateIpAddress"`
	InstanceId           string `json:"InstanceId"`
	VpcId                string `json:"VpcId"`
	VSwitchId            string `json:"VSwitchId"`
	ZoneId               string `json:"ZoneId"`
	Description          string `json:"Description"`
	ResourceGroupId      string `json:"ResourceGroupId"`
	CreationTime         string `json:"CreationTime"`
	SourceDestCheck      bool   `json:"SourceDestCheck"`
	SecurityGroupIds     struct {
		SecurityGroupId []string `json:"SecurityGroupId"`
	} `json:"SecurityGroupIds"`
	PrivateIpSets struct {
		PrivateIpSet []privateIPSetJSON `json:"PrivateIpSet"`
	} `json:"PrivateIpSets"`
	Tags struct {
		Tag []tagJSON `json:"Tag"`
	} `json:"Tags"`
	Ipv4PrefixSets struct {
		Ipv4PrefixSet []ipv4PrefixJSON `json:"Ipv4PrefixSet"`
	} `json:"Ipv4PrefixSets"`
	Ipv6Sets struct {
		Ipv6Set []ipv6SetJSON `json:"Ipv6Set"`
	} `json:"Ipv6Sets"`
	Ipv6PrefixSets struct {
		Ipv6PrefixSet []ipv6PrefixJSON `json:"Ipv6PrefixSet"`
	} `json:"Ipv6PrefixSets"`
	Attachment *attachmentJSON `json:"Attachment,omitempty"`
}

func (c *Cloud) eniJSON(e *eni) eniJSON {
	j := eniJSON{
		NetworkInterfaceId:   e.id,
		NetworkInterfaceName: e.name,
		Type:                 e.apiType(),
		Status:               e.status,
		MacAddress:           e.mac.String(),
		InstanceId:           e.instanceID,
		VpcId:                c.cfg.VPCID,
		VSwitchId:            e.vswID,
		ZoneId:               e.zoneID,
		Description:          e.description,
		ResourceGroupId:      e.resourceGroupID,
		CreationTime:         e.created.Format(time.RFC3339),
		SourceDestCheck:      e.sourceDestCheck,
	}
	j.SecurityGroupIds.SecurityGroupId = append([]string{}, e.sgs...)
	j.PrivateIpSets.PrivateIpSet = []privateIPSetJSON{}
	for i, ip := range e.ips {
		if i == 0 {
			j.PrivateIpAddress = ip.String()
		}
		j.PrivateIpSets.PrivateIpSet = append(j.PrivateIpSets.PrivateIpSet,
			privateIPSetJSON{PrivateIpAddress: ip.String(), Primary: i == 0})
	}
	j.Ipv4PrefixSets.Ipv4PrefixSet = []ipv4PrefixJSON{}
	for _, p := range e.prefixes {
		j.Ipv4PrefixSets.Ipv4PrefixSet = append(j.Ipv4PrefixSets.Ipv4PrefixSet, ipv4PrefixJSON{Ipv4Prefix: p.String()})
	}
	j.Ipv6Sets.Ipv6Set = []ipv6SetJSON{}
	for _, ip := range e.ipv6s {
		j.Ipv6Sets.Ipv6Set = append(j.Ipv6Sets.Ipv6Set, ipv6SetJSON{Ipv6Address: ip.String()})
	}
	j.Ipv6PrefixSets.Ipv6PrefixSet = []ipv6PrefixJSON{}
	for _, p := range e.prefixes6 {
		j.Ipv6PrefixSets.Ipv6PrefixSet = append(j.Ipv6PrefixSets.Ipv6PrefixSet, ipv6PrefixJSON{Ipv6Prefix: p.String()})
	}
	j.Tags.Tag = []tagJSON{}
	for _, t := range e.tags {
		j.Tags.Tag = append(j.Tags.Tag, tagJSON{TagKey: t.Key, TagValue: t.Value})
	}
	if e.instanceID != "" && (e.status == statusInUse || e.status == statusDetaching) {
		j.Attachment = &attachmentJSON{InstanceId: e.instanceID, DeviceIndex: e.deviceIndex, TrunkNetworkInterfaceId: e.trunkID}
		if e.typ == eniTypeTrunk {
			j.Attachment.MemberNetworkInterfaceIds = &memberIDsJSON{MemberNetworkInterfaceId: c.membersLocked(e.id)}
		}
	}
	return j
}

type createENIResponse struct {
	respBase
	eniJSON
}

func (c *Cloud) apiCreateNetworkInterface(q *request) (response, *apiError) {
	r := createRequest{
		vswID:           q.get("VSwitchId"),
		name:            q.get("NetworkInterfaceName"),
		description:     q.get("Description"),
		resourceGroupID: q.get("ResourceGroupId"),
		clientToken:     q.get("ClientToken"),
		typ:             eniTypeSecondary,
		sourceDestCheck: !strings.EqualFold(q.get("SourceDestCheck"), "false"),
	}
	if r.vswID == "" {
		return nil, errMissing("VSwitchId")
	}
	r.sgs = q.list("SecurityGroupIds")
	if sg := q.get("SecurityGroupId"); sg != "" {
		r.sgs = append([]string{sg}, r.sgs...)
	}
	if len(r.sgs) == 0 {
		return nil, errMissing("SecurityGroupId")
	}
	switch t := q.get("InstanceType"); t {
	case "", eniTypeSecondary:
	case eniTypeTrunk:
		r.typ = eniTypeTrunk
	default:
		return nil, errInvalid("InstanceType", t)
	}
	var aerr *apiError
	if r.tags, aerr = q.tags(); aerr != nil {
		return nil, aerr
	}
	if r.secondary, aerr = q.integer("SecondaryPrivateIpAddressCount", 0, 0, maxIPsPerENI-1); aerr != nil {
		return nil, aerr
	}
	if r.prefixes, aerr = q.integer("Ipv4PrefixCount", 0, 1, maxAssignPerCall); aerr != nil {
		return nil, aerr
	}
	if r.prefixes > 0 && r.secondary > 0 {
		return nil, errInvalid("Ipv4PrefixCount", "given together with SecondaryPrivateIpAddressCount")
	}
	if r.ipv6s, aerr = q.integer("Ipv6AddressCount", 0, 1, maxIPsPerENI); aerr != nil {
		return nil, aerr
	}
	if r.prefixes6, aerr = q.integer("Ipv6PrefixCount", 0, 1, maxAssignPerCall); aerr != nil {
		return nil, aerr
	}
	if r.prefixes6 > 0 && r.ipv6s > 0 {
		return nil, errInvalid("Ipv6PrefixCount", "given together with Ipv6AddressCount")
	}
	if s := q.get("PrimaryIpAddress"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is4() {
			return nil, errInvalid("PrimaryIpAddress", s)
		}
		r.primaryIP = ip
	}
	e, aerr := c.createENI(r)
	if aerr != nil {
		return nil, aerr
	}
	return &createENIResponse{eniJSON: c.eniJSON(e)}, nil
}

type emptyResponse struct{ respBase }

func (c *Cloud) apiAttachNetworkInterface(q *request) (response, *apiError) {
	eniID, instID := q.get("NetworkInterfaceId"), q.get("InstanceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	if instID == "" {
		return nil, errMissing("InstanceId")
	}
	if aerr := c.attachENI(eniID, instID, q.get("TrunkNetworkInstanceId")); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

func (c *Cloud) apiDetachNetworkInterface(q *request) (response, *apiError) {
	eniID, instID := q.get("NetworkInterfaceId"), q.get("InstanceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	if instID == "" {
		return nil, errMissing("InstanceId")
	}
	if aerr := c.detachENI(eniID, instID, q.get("TrunkNetworkInstanceId")); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

func (c *Cloud) apiDeleteNetworkInterface(q *request) (response, *apiError) {
	eniID := q.get("NetworkInterfaceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	if aerr := c.deleteENI(eniID); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

// maxAssignPerCall is how many addresses one AssignPrivateIpAddresses call
// may ask for.
const maxAssignPerCall = 10

type assignResponse struct {
	respBase
	AssignedPrivateIpAddressesSet struct {
		NetworkInterfaceId string `json:"NetworkInterfaceId"`
		PrivateIpSet       struct {
			PrivateIpAddress []string `json:"PrivateIpAddress"`
		} `json:"PrivateIpSet"`
		Ipv4PrefixSet struct {
			Ipv4Prefixes []string `json:"Ipv4Prefixes"`
		} `json:"Ipv4PrefixSet"`
	} `json:"AssignedPrivateIpAddressesSet"`
}

func (c *Cloud) apiAssignPrivateIpAddresses(q *request) (response, *apiError) {
	eniID := q.get("NetworkInterfaceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	// Addresses and prefixes are two exclusive forms of the call.
	hasIPs := q.get("SecondaryPrivateIpAddressCount") != "" || len(q.indexed("PrivateIpAddress", "")) > 0
	hasPrefixes := q.get("Ipv4PrefixCount") != "" || len(q.indexed("Ipv4Prefix", "")) > 0
	switch {
	case hasIPs && hasPrefixes:
		return nil, newAPIError(http.StatusBadRequest, CodeInvalidParameter,
			"The specified parameters Ipv4PrefixCount/Ipv4Prefix.N and SecondaryPrivateIpAddressCount/PrivateIpAddress.N are mutually exclusive.")
	case hasPrefixes:
		return c.assignPrefixesAPI(eniID, q)
	}
	count, aerr := q.integer("SecondaryPrivateIpAddressCount", 0, 1, maxAssignPerCall)
	if aerr != nil {
		return nil, aerr
	}
	named, aerr := q.addrs("PrivateIpAddress")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case count == 0 && len(named) == 0:
		return nil, errMissing("SecondaryPrivateIpAddressCount")
	case count > 0 && len(named) > 0:
		return nil, errInvalid("PrivateIpAddress.N", "given together with SecondaryPrivateIpAddressCount")
	case len(named) > maxAssignPerCall:
		return nil, errInvalid("PrivateIpAddress.N", "more than 10 addresses")
	}
	got, aerr := c.assignIPs(eniID, count, named, q.get("ClientToken"))
	if aerr != nil {
		return nil, aerr
	}
	resp := &assignResponse{}
	resp.AssignedPrivateIpAddressesSet.NetworkInterfaceId = eniID
	resp.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress = addrStrings(got)
	resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes = []string{}
	return resp, nil
}

// assignPrefixesAPI is AssignPrivateIpAddresses in its prefix form:
// Ipv4PrefixCount (1–10) or Ipv4Prefix.N (at most 10), not both.
func (c *Cloud) assignPrefixesAPI(eniID string, q *request) (response, *apiError) {
	count, aerr := q.integer("Ipv4PrefixCount", 0, 1, maxAssignPerCall)
	if aerr != nil {
		return nil, aerr
	}
	named, aerr := q.prefixes("Ipv4Prefix")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case count > 0 && len(named) > 0:
		return nil, errInvalid("Ipv4Prefix.N", "given together with Ipv4PrefixCount")
	case len(named) > maxAssignPerCall:
		return nil, errInvalid("Ipv4Prefix.N", "more than 10 prefixes")
	case count == 0 && len(named) == 0:
		return nil, errMissing("Ipv4PrefixCount")
	}
	got, aerr := c.assignPrefixes(eniID, count, named, q.get("ClientToken"))
	if aerr != nil {
		return nil, aerr
	}
	resp := &assignResponse{}
	resp.AssignedPrivateIpAddressesSet.NetworkInterfaceId = eniID
	resp.AssignedPrivateIpAddressesSet.PrivateIpSet.PrivateIpAddress = []string{}
	resp.AssignedPrivateIpAddressesSet.Ipv4PrefixSet.Ipv4Prefixes = prefixStrings(got)
	return resp, nil
}

func (c *Cloud) apiUnassignPrivateIpAddresses(q *request) (response, *apiError) {
	eniID := q.get("NetworkInterfaceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	ips, aerr := q.addrs("PrivateIpAddress")
	if aerr != nil {
		return nil, aerr
	}
	prefixes, aerr := q.prefixes("Ipv4Prefix")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case len(ips) > 0 && len(prefixes) > 0:
		// Addresses and prefixes go in separate calls, as for IPv6.
		return nil, errInvalid("Ipv4Prefix.N", "given together with PrivateIpAddress.N")
	case len(prefixes) > maxAssignPerCall:
		return nil, errInvalid("Ipv4Prefix.N", "more than 10 prefixes")
	case len(prefixes) > 0:
		if aerr := c.unassignPrefixes(eniID, prefixes); aerr != nil {
			return nil, aerr
		}
		return &emptyResponse{}, nil
	case len(ips) == 0:
		return nil, errMissing("PrivateIpAddress.1")
	}
	if aerr := c.unassignIPs(eniID, ips); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func addrStrings(ips []netip.Addr) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}
