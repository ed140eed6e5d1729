package sim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Describe* answer from the view the describe lag (Config.DescribeLag, or
// SetDescribeLag) in the past.

// viewENIs returns copies of the ENIs as Describe sees them now.
func (c *Cloud) viewENIs() []*eni {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.describeLag > 0 {
		c.injected[FaultDescribeLagged]++
		return c.hist.enisAt(time.Now().Add(-c.describeLag))
	}
	var out []*eni
	for _, e := range c.liveENIsLocked() {
		out = append(out, e.clone())
	}
	return out
}

// maxDescribePage is the largest PageSize and MaxResults accepted.
const maxDescribePage = 500

type describeENIsResponse struct {
	respBase
	TotalCount           int    `json:"TotalCount"`
	PageNumber           int    `json:"PageNumber,omitempty"`
	PageSize             int    `json:"PageSize,omitempty"`
	NextToken            string `json:"NextToken"`
	NetworkInterfaceSets struct {
		NetworkInterfaceSet []eniJSON `json:"NetworkInterfaceSet"`
	} `json:"NetworkInterfaceSets"`
}

func (c *Cloud) apiDescribeNetworkInterfaces(q *request) (response, *apiError) {
	ids := q.list("NetworkInterfaceId")
	if len(ids) > 100 {
		return nil, errInvalid("NetworkInterfaceId.N", "more than 100 ids")
	}
	tags, aerr := q.tags()
	if aerr != nil {
		return nil, aerr
	}
	ips := q.list("PrivateIpAddress")
	filter := func(e *eni) bool {
		switch {
		case len(ids) > 0 && !slices.Contains(ids, e.id),
			q.get("InstanceId") != "" && e.instanceID != q.get("InstanceId"),
			q.get("VSwitchId") != "" && e.vswID != q.get("VSwitchId"),
			q.get("VpcId") != "" && c.cfg.VPCID != q.get("VpcId"),
			q.get("Status") != "" && e.status != q.get("Status"),
			q.get("Type") != "" && e.apiType() != q.get("Type"),
			q.get("SecurityGroupId") != "" && !slices.Contains(e.sgs, q.get("SecurityGroupId")),
			q.get("NetworkInterfaceName") != "" && e.name != q.get("NetworkInterfaceName"),
			q.get("PrimaryIpAddress") != "" && (len(e.ips) == 0 || e.ips[0].String() != q.get("PrimaryIpAddress")),
			len(ips) > 0 && !slices.ContainsFunc(addrStrings(e.ips), func(s string) bool { return slices.Contains(ips, s) }),
			!e.hasTags(tags):
			return false
		}
		return true
	}
	var matched []*eni
	for _, e := range c.viewENIs() {
		if filter(e) {
			matched = append(matched, e)
		}
	}

	resp := &describeENIsResponse{TotalCount: len(matched)}
	var items []*eni
	// NextToken/MaxResults paging continues after the last ENI returned
	// (by creation order), so ENIs deleted between pages shift nothing.
	if q.get("NextToken") != "" || q.get("MaxResults") != "" {
		maxResults, aerr := q.integer("MaxResults", 10, 1, maxDescribePage)
		if aerr != nil {
			return nil, aerr
		}
		var after uint64
		if tok := q.get("NextToken"); tok != "" {
			n, err := strconv.ParseUint(strings.TrimPrefix(tok, "seq-"), 10, 64)
			if err != nil || !strings.HasPrefix(tok, "seq-") {
				return nil, errInvalid("NextToken", tok)
			}
			after = n
		}
		i, _ := slices.BinarySearchFunc(matched, after+1, func(e *eni, seq uint64) int {
			switch {
			case e.seq < seq:
				return -1
			case e.seq > seq:
				return 1
			}
			return 0
		})
		items = matched[i:min(i+maxResults, len(matched))]
		if i+maxResults < len(matched) {
			resp.NextToken = "seq-" + strconv.FormatUint(items[len(items)-1].seq, 10)
		}
	} else {
		number, aerr := q.integer("PageNumber", 1, 1, 1<<30)
		if aerr != nil {
			return nil, aerr
		}
		size, aerr := q.integer("PageSize", 10, 1, maxDescribePage)
		if aerr != nil {
			return nil, aerr
		}
		resp.PageNumber, resp.PageSize = number, size
		items = page(matched, number, size)
	}
	resp.NetworkInterfaceSets.NetworkInterfaceSet = []eniJSON{}
	for _, e := range items {
		resp.NetworkInterfaceSets.NetworkInterfaceSet = append(resp.NetworkInterfaceSets.NetworkInterfaceSet, c.eniJSON(e))
	}
	return resp, nil
}

type instanceTypeJSON struct {
	InstanceTypeId              string `json:"InstanceTypeId"`
	InstanceTypeFamily          string `json:"InstanceTypeFamily"`
	EniQuantity                 int    `json:"EniQuantity"`
	EniPrivateIpAddressQuantity int    `json:"EniPrivateIpAddressQuantity"`
	EniIpv6AddressQuantity      int    `json:"EniIpv6AddressQuantity"`
	EniTrunkSupported           bool   `json:"EniTrunkSupported"`
	EniTotalQuantity            int    `json:"EniTotalQuantity"`
}

type describeInstanceTypesResponse struct {
	respBase
	NextToken     string `json:"NextToken"`
	InstanceTypes struct {
		InstanceType []instanceTypeJSON `json:"InstanceType"`
	} `json:"InstanceTypes"`
}

func (c *Cloud) apiDescribeInstanceTypes(q *request) (response, *apiError) {
	want := q.list("InstanceTypes")
	resp := &describeInstanceTypesResponse{}
	resp.InstanceTypes.InstanceType = []instanceTypeJSON{}
	for _, t := range c.cfg.InstanceTypes {
		if len(want) > 0 && !slices.Contains(want, t.ID) {
			continue
		}
		family := t.ID
		if i := strings.LastIndexByte(t.ID, '.'); i > 0 {
			family = t.ID[:i]
		}
		total := t.ENIs
		if t.TrunkSupported {
			total += t.MemberENIs
		}
		resp.InstanceTypes.InstanceType = append(resp.InstanceTypes.InstanceType, instanceTypeJSON{
			InstanceTypeId:              t.ID,
			InstanceTypeFamily:          family,
			EniQuantity:                 t.ENIs,
			EniPrivateIpAddressQuantity: t.IPv4PerENI,
			EniIpv6AddressQuantity:      t.IPv6PerENI,
			EniTrunkSupported:           t.TrunkSupported,
			EniTotalQuantity:            total,
		})
	}
	return resp, nil
}

type vswitchJSON struct {
	VSwitchId               string `json:"VSwitchId"`
	VpcId                   string `json:"VpcId"`
	ZoneId                  string `json:"ZoneId"`
	CidrBlock               string `json:"CidrBlock"`
	AvailableIpAddressCount int64  `json:"AvailableIpAddressCount"`
	Status                  string `json:"Status"`
	IsDefault               bool   `json:"IsDefault"`
	Ipv6CidrBlock           string `json:"Ipv6CidrBlock"`
	EnabledIpv6             bool   `json:"EnabledIpv6"`
}

type describeVSwitchesResponse struct {
	respBase
	TotalCount int `json:"TotalCount"`
	PageNumber int `json:"PageNumber"`
	PageSize   int `json:"PageSize"`
	VSwitches  struct {
		VSwitch []vswitchJSON `json:"VSwitch"`
	} `json:"VSwitches"`
}

// maxVSwitchPage is DescribeVSwitches' largest PageSize.
const maxVSwitchPage = 50

func (c *Cloud) apiDescribeVSwitches(q *request) (response, *apiError) {
	number, aerr := q.integer("PageNumber", 1, 1, 1<<30)
	if aerr != nil {
		return nil, aerr
	}
	size, aerr := q.integer("PageSize", 10, 1, maxVSwitchPage)
	if aerr != nil {
		return nil, aerr
	}
	if id := q.get("VpcId"); id != "" && id != c.cfg.VPCID {
		return nil, newAPIError(http.StatusNotFound, "InvalidVpcId.NotFound", "The specified VPC %s does not exist.", id)
	}
	var matched []vswitchJSON
	c.mu.Lock()
	at := time.Now().Add(-c.describeLag)
	if c.describeLag > 0 {
		c.injected[FaultDescribeLagged]++
	}
	for _, spec := range c.cfg.VSwitches {
		v := c.vsws[spec.ID]
		if (q.get("VSwitchId") != "" && v.ID != q.get("VSwitchId")) || (q.get("ZoneId") != "" && v.ZoneID != q.get("ZoneId")) {
			continue
		}
		free, ok := c.hist.freeAt(v.ID, at)
		if c.describeLag == 0 || !ok {
			free = v.free()
		}
		matched = append(matched, vswitchJSON{
			VSwitchId: v.ID, VpcId: c.cfg.VPCID, ZoneId: v.ZoneID, CidrBlock: v.CIDR.String(),
			AvailableIpAddressCount: int64(free), Status: "Available",
			Ipv6CidrBlock: ipv6CIDRString(v), EnabledIpv6: v.ipv6On(),
		})
	}
	c.mu.Unlock()
	resp := &describeVSwitchesResponse{TotalCount: len(matched), PageNumber: number, PageSize: size}
	resp.VSwitches.VSwitch = append([]vswitchJSON{}, page(matched, number, size)...)
	return resp, nil
}

func ipv6CIDRString(v *vswitch) string {
	if !v.ipv6On() {
		return ""
	}
	return v.IPv6CIDR.String()
}
