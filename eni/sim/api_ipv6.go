package sim

import "net/http"

type assignIPv6Response struct {
	respBase
	NetworkInterfaceId string `json:"NetworkInterfaceId"`
	Ipv6Sets           struct {
		Ipv6Address []string `json:"Ipv6Address"`
	} `json:"Ipv6Sets"`
	Ipv6PrefixSets struct {
		Ipv6Prefix []string `json:"Ipv6Prefix"`
	} `json:"Ipv6PrefixSets"`
}

// apiAssignIpv6Addresses takes Ipv6AddressCount (1–10) or Ipv6Address.N
// (at most 10), not both; or, in its prefix form, Ipv6PrefixCount (1–10)
// or Ipv6Prefix.N (at most 10), not both. Addresses and prefixes in one
// call are refused, as for IPv4.
func (c *Cloud) apiAssignIpv6Addresses(q *request) (response, *apiError) {
	eniID := q.get("NetworkInterfaceId")
	if eniID == "" {
		return nil, errMissing("NetworkInterfaceId")
	}
	hasAddrs := q.get("Ipv6AddressCount") != "" || len(q.indexed("Ipv6Address", "")) > 0
	hasPrefixes := q.get("Ipv6PrefixCount") != "" || len(q.indexed("Ipv6Prefix", "")) > 0
	if hasAddrs && hasPrefixes {
		return nil, newAPIError(http.StatusBadRequest, CodeInvalidParameter,
			"The specified parameters Ipv6PrefixCount/Ipv6Prefix.N and Ipv6AddressCount/Ipv6Address.N are mutually exclusive.")
	}
	if hasPrefixes {
		return c.assignPrefixes6API(q, eniID)
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
	resp.Ipv6PrefixSets.Ipv6Prefix = []string{}
	return resp, nil
}

// assignPrefixes6API is AssignIpv6Addresses in its prefix form.
func (c *Cloud) assignPrefixes6API(q *request, eniID string) (response, *apiError) {
	count, aerr := q.integer("Ipv6PrefixCount", 0, 1, maxAssignPerCall)
	if aerr != nil {
		return nil, aerr
	}
	named, aerr := q.prefixes6("Ipv6Prefix")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case count > 0 && len(named) > 0:
		return nil, errInvalid("Ipv6Prefix.N", "given together with Ipv6PrefixCount")
	case len(named) > maxAssignPerCall:
		return nil, errInvalid("Ipv6Prefix.N", "more than 10 prefixes")
	case count == 0 && len(named) == 0:
		return nil, errMissing("Ipv6PrefixCount")
	}
	got, aerr := c.assignPrefixes6(eniID, count, named, q.get("ClientToken"))
	if aerr != nil {
		return nil, aerr
	}
	resp := &assignIPv6Response{NetworkInterfaceId: eniID}
	resp.Ipv6Sets.Ipv6Address = []string{}
	resp.Ipv6PrefixSets.Ipv6Prefix = prefixStrings(got)
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
	prefixes, aerr := q.prefixes6("Ipv6Prefix")
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case len(ips) > 0 && len(prefixes) > 0:
		// Terway sends them in separate calls (its commit 3e1fd704).
		return nil, errInvalid("Ipv6Prefix.N", "given together with Ipv6Address.N")
	case len(prefixes) > maxAssignPerCall:
		return nil, errInvalid("Ipv6Prefix.N", "more than 10 prefixes")
	case len(prefixes) > 0:
		if aerr := c.unassignPrefixes6(eniID, prefixes); aerr != nil {
			return nil, aerr
		}
		return &emptyResponse{}, nil
	case len(ips) == 0:
		return nil, errMissing("Ipv6Address.1")
	}
	if aerr := c.unassignIPv6s(eniID, ips); aerr != nil {
		return nil, aerr
	}
	return &emptyResponse{}, nil
}
