package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metadata service headers, as on 100.100.100.200.
const (
	metadataTokenHeader    = "X-aliyun-ecs-metadata-token"
	metadataTokenTTLHeader = "X-aliyun-ecs-metadata-token-ttl-seconds"
	maxMetadataTokenTTL    = 21600
	metadataPrefix         = "/latest/meta-data"
	metadataTokenPath      = "/latest/api/token"
)

type mdToken struct {
	instanceID string
	expires    time.Time
}

// MetadataHandler returns the instance metadata service. It answers for
// the instance the caller is (Config.IdentifyCaller, or by source address:
// a private IP of an InUse ENI), in plain text, from the live model.
// Unknown callers get 403, unknown paths 404. A request carrying
// X-aliyun-ecs-metadata-token must carry a live token of the same instance
// (401 otherwise); tokens come from PUT /latest/api/token.
func (c *Cloud) MetadataHandler() http.Handler { return http.HandlerFunc(c.serveMetadata) }

func (c *Cloud) serveMetadata(w http.ResponseWriter, r *http.Request) {
	instID, ok := c.identify(r)
	if r.URL.Path == metadataTokenPath {
		c.serveMetadataToken(w, r, instID, ok)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !ok {
		http.Error(w, "forbidden: caller is not an instance of this VPC", http.StatusForbidden)
		return
	}
	if tok := r.Header.Get(metadataTokenHeader); tok != "" && !c.validToken(tok, instID) {
		http.Error(w, "unauthorized: invalid or expired metadata token", http.StatusUnauthorized)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, metadataPrefix)
	if !ok || (key != "" && key[0] != '/') {
		http.NotFound(w, r)
		return
	}
	answer, found := c.metadata(instID, strings.Trim(key, "/"))
	if !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(answer))
}

func (c *Cloud) serveMetadataToken(w http.ResponseWriter, r *http.Request, instID string, known bool) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(metadataTokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxMetadataTokenTTL {
		http.Error(w, "bad request: "+metadataTokenTTLHeader+" must be 1.."+strconv.Itoa(maxMetadataTokenTTL), http.StatusBadRequest)
		return
	}
	if !known {
		http.Error(w, "forbidden: caller is not an instance of this VPC", http.StatusForbidden)
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	now := time.Now()
	c.mu.Lock()
	for k, t := range c.mdTokens {
		if now.After(t.expires) {
			delete(c.mdTokens, k)
		}
	}
	c.mdTokens[tok] = mdToken{instanceID: instID, expires: now.Add(time.Duration(ttl) * time.Second)}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

func (c *Cloud) validToken(tok, instID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.mdTokens[tok]
	return ok && t.instanceID == instID && time.Now().Before(t.expires)
}

// identify finds the calling instance.
func (c *Cloud) identify(r *http.Request) (string, bool) {
	if c.cfg.IdentifyCaller != nil {
		id, ok := c.cfg.IdentifyCaller(r)
		if !ok {
			return "", false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		_, known := c.instances[id]
		return id, known
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	ip = ip.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.enis {
		if e.status == statusInUse && slices.Contains(e.routed(), ip) {
			return e.instanceID, true
		}
	}
	return "", false
}

// metadata answers one key (path below /latest/meta-data, no slashes at
// either end) for an instance.
func (c *Cloud) metadata(instID, key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inst, ok := c.instances[instID]
	if !ok {
		return "", false
	}
	primary := c.enis[inst.PrimaryENIID]
	vsw := c.vsws[inst.VSwitchID]
	simple := map[string]string{
		"instance-id":            inst.ID,
		"region-id":              c.cfg.RegionID,
		"zone-id":                inst.ZoneID,
		"vpc-id":                 c.cfg.VPCID,
		"vswitch-id":             vsw.ID,
		"vswitch-cidr-block":     vsw.CIDR.String(),
		"vpc-cidr-block":         c.cfg.VPCCIDR.String(),
		"private-ipv4":           inst.PrimaryIP.String(),
		"mac":                    primary.mac.String(),
		"hostname":               inst.Hostname,
		"instance/instance-type": inst.Type,
	}
	if v, ok := simple[key]; ok {
		return v, true
	}
	if key == "ram" || strings.HasPrefix(key, "ram/") {
		return c.ramRoleMetadata(inst, key)
	}
	switch key {
	case "":
		keys := []string{"hostname", "instance/", "instance-id", "mac", "network/", "private-ipv4",
			"region-id", "vpc-cidr-block", "vpc-id", "vswitch-cidr-block", "vswitch-id", "zone-id"}
		if inst.RAMRole != "" {
			keys = append(keys, "ram/")
			slices.Sort(keys)
		}
		return listing(keys...), true
	case "instance":
		return listing("instance-type"), true
	case "network":
		return listing("interfaces/"), true
	case "network/interfaces":
		return listing("macs/"), true
	case "network/interfaces/macs":
		var macs []string
		for _, e := range c.attachedLocked(inst.ID) {
			macs = append(macs, e.mac.String()+"/")
		}
		return listing(macs...), true
	}
	rest, ok := strings.CutPrefix(key, "network/interfaces/macs/")
	if !ok {
		return "", false
	}
	mac, field, _ := strings.Cut(rest, "/")
	var e *eni
	for _, a := range c.attachedLocked(inst.ID) {
		if strings.EqualFold(a.mac.String(), mac) {
			e = a
		}
	}
	if e == nil {
		return "", false
	}
	ev := c.vsws[e.vswID]
	switch field {
	case "":
		keys := []string{"gateway", "netmask", "network-interface-id", "primary-ip-address", "private-ipv4s",
			"vpc-cidr-block", "vpc-id", "vswitch-cidr-block", "vswitch-id"}
		if ev.ipv6On() {
			keys = append(keys, "ipv6-gateway", "ipv6s", "vswitch-ipv6-cidr-block")
			slices.Sort(keys)
		}
		return listing(keys...), true
	case "ipv6s", "ipv6-gateway", "vswitch-ipv6-cidr-block":
		// A vSwitch without IPv6 has none of these keys.
		if !ev.ipv6On() {
			return "", false
		}
		switch field {
		case "ipv6s":
			b, _ := json.Marshal(addrStrings(e.ipv6s))
			return string(b), true
		case "ipv6-gateway":
			return ev.gateway6().String(), true
		}
		return ev.IPv6CIDR.String(), true
	case "network-interface-id":
		return e.id, true
	case "primary-ip-address":
		return e.ips[0].String(), true
	case "private-ipv4s":
		b, _ := json.Marshal(addrStrings(e.ips))
		return string(b), true
	case "vswitch-cidr-block":
		return ev.CIDR.String(), true
	case "vswitch-id":
		return ev.ID, true
	case "vpc-id":
		return c.cfg.VPCID, true
	case "vpc-cidr-block":
		return c.cfg.VPCCIDR.String(), true
	case "gateway":
		return ev.gateway.String(), true
	case "netmask":
		return ev.netmask(), true
	}
	return "", false
}

// attachedLocked returns the instance's InUse ENIs by device index: only
// those appear in metadata, as on a real instance (trunk members do not).
func (c *Cloud) attachedLocked(instID string) []*eni {
	var out []*eni
	for _, e := range c.enis {
		if e.instanceID == instID && e.status == statusInUse && e.trunkID == "" { // a member is no NIC of the node
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *eni) int { return a.deviceIndex - b.deviceIndex })
	return out
}

func listing(items ...string) string { return strings.Join(items, "\n") }
