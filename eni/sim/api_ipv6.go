package sim

type assignIPv6Response struct {
	respBase
	NetworkInterfaceId string `json:"NetworkInterfaceId"`
	Ipv6Sets           struct {
		Ipv6Address []string `json:"Ipv6Address"`
	} `json:"Ipv6Sets"`
}

// apiAssignIpv6Addresses takes Ipv6AddressCount (1–10) or Ipv6Address.N
// (at most 10), not both.
func (c *Cloud) apiAssignIpv6Addresses(q *request) (response, *apiError) {
	eniID := q.get("NetworkInterfaceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	count, aerr := q.integer("Ipv6AddressCount", 0, 1, maxAssignPerCall)
	if aerr != nil {
		return nil, aerr
	}
	named, aerr := q.addrs6("Ipv6Address")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case count == 0 && len(named) == 0:
		return nil, errMissing("Ipv6AddressCount")
	case count > 0 && len(named) > 0:
		return nil, errInvalid("Ipv6Address.N", "given together with Ipv6AddressCount")
	case len(named) > maxAssignPerCall:
		return nil, errInvalid("Ipv6Address.N", "more than 10 addresses")
	}
	got, aerr := c.assignIPv6s(eniID, count, named, q.get("ClientToken"))
	if aerr != nil {
		return nil, aerr
	}
	resp := &assignIPv6Response{NetworkInterfaceId: eniID}
	resp.Ipv6Sets.Ipv6Address = addrStrings(got)
	return resp, nil
}

func (c *Cloud) apiUnassignIpv6Addresses(q *request) (response, *apiError) {
	eniID := q.get("NetworkInterfaceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	ips, aerr := q.addrs6("Ipv6Address")
	if aerr != nil {
		return nil, aerr
	}
	if len(ips) == 0 {
		return nil, errMissing("Ipv6Address.1")
	}
	if aerr := c.unassignIPv6s(eniID, ips); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}
