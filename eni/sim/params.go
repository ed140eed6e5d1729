package sim

import (
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// request reads the parameters of one RPC call, with the SDK's flattening
// of lists ("Name.1", "Name.2") and structs ("Tag.1.Key").
type request struct {
	params url.Values
}

func (q *request) get(name string) string { return q.params.Get(name) }

// indexed returns the values of "prefix.N" (or "prefix.N.suffix" when
// suffix is set), keyed by N.
func (q *request) indexed(prefix, suffix string) map[int]string {
	out := map[int]string{}
	for k := range q.params {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		if suffix != "" {
			if rest, ok = strings.CutSuffix(rest, "."+suffix); !ok {
				continue
			}
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			continue
		}
		out[n] = q.params.Get(k)
	}
	return out
}

// list returns the values of "name.1", "name.2", ... in index order.
func (q *request) list(name string) []string {
	m := q.indexed(name, "")
	keys := make([]int, 0, len(m))
	for n := range m {
		keys = append(keys, n)
	}
	sort.Ints(keys)
	out := make([]string, 0, len(keys))
	for _, n := range keys {
		if m[n] != "" {
			out = append(out, m[n])
		}
	}
	return out
}

// tags returns "Tag.N.Key" / "Tag.N.Value" pairs in index order.
func (q *request) tags() ([]tag, *apiError) {
	keys := q.indexed("Tag", "Key")
	values := q.indexed("Tag", "Value")
	idx := make([]int, 0, len(keys))
	for n := range keys {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	var out []tag
	seen := map[string]bool{}
	for _, n := range idx {
		k := keys[n]
		if k == "" {
			continue
		}
		if seen[k] {
			return nil, errInvalid("Tag."+strconv.Itoa(n)+".Key", k+" (duplicate key)")
		}
		seen[k] = true
		t := tag{Key: k, Value: values[n]}
		if aerr := checkTag(t); aerr != nil {
			return nil, aerr
		}
		out = append(out, t)
	}
	if len(out) > 20 {
		return nil, errInvalid("Tag.N", "more than 20 tags")
	}
	return out, nil
}

// integer parses an optional integer parameter within [lo, hi].
func (q *request) integer(name string, def, lo, hi int) (int, *apiError) {
	s := q.get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errInvalid(name, s)
	}
	return n, nil
}

// addrs parses a list of IPv4 addresses ("name.N").
func (q *request) addrs(name string) ([]netip.Addr, *apiError) {
	var out []netip.Addr
	for _, s := range q.list(name) {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is4() {
			return nil, errInvalid(name+".N", s)
		}
		out = append(out, ip)
	}
	return out, nil
}

// page cuts items to one page. PageNumber starts at 1.
func page[T any](items []T, number, size int) []T {
	start := (number - 1) * size
	if start >= len(items) {
		return nil
	}
	return items[start:min(start+size, len(items))]
}

// prefixes parses a list of delegated IPv4 prefixes ("name.N"): aligned
// /28s.
func (q *request) prefixes(name string) ([]netip.Prefix, *apiError) {
	var out []netip.Prefix
	for _, s := range q.list(name) {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() || p.Bits() != PrefixBits || p != p.Masked() {
			return nil, errInvalid(name+".N", s+" (an aligned IPv4 /28)")
		}
		out = append(out, p)
	}
	return out, nil
}

// addrs6 parses a list of IPv6 addresses ("name.N").
func (q *request) addrs6(name string) ([]netip.Addr, *apiError) {
	var out []netip.Addr
	for _, s := range q.list(name) {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is6() || ip.Is4In6() {
			return nil, newAPIError(http.StatusBadRequest, CodeInvalidIPAddress, "The specified IPv6 address %q is not valid.", s)
		}
		out = append(out, ip)
	}
	return out, nil
}

// prefixes6 parses a list of delegated IPv6 prefixes ("name.N"): aligned
// /80s.
func (q *request) prefixes6(name string) ([]netip.Prefix, *apiError) {
	var out []netip.Prefix
	for _, s := range q.list(name) {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != Prefix6Bits || p != p.Masked() {
			return nil, errInvalid(name+".N", s+" (an aligned IPv6 /80)")
		}
		out = append(out, p)
	}
	return out, nil
}
