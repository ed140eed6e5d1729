package sim

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Cloud is the simulated control plane of one region. Create it with New,
// add instances with AddInstance, serve APIHandler and MetadataHandler, and
// Close it to stop its timers.
type Cloud struct {
	cfg   Config
	types map[string]InstanceType
	log   *slog.Logger
	now   func() time.Time // the clock of request checks; tests move it

	mu        sync.Mutex // guards everything below
	closed    bool
	sgs       map[string]*secGroup // security groups, by id
	sgRetry   *time.Timer          // pending retry of a failed SetSecurityPolicy
	sgTokens  map[string]string    // CreateSecurityGroup ClientToken → group id
	otherVPCs map[string]bool      // VPCs besides cfg.VPCID (AddVPC)
	// sgCapacity is how many ENIs a group of each type may hold.
	sgCapacity map[string]int
	vsws       map[string]*vswitch
	instances  map[string]*instance
	instOrder  []string
	enis       map[string]*eni
	seq        uint64
	macs       map[string]bool
	hist       *history
	// createTokens remembers CreateNetworkInterface answers by ClientToken.
	createTokens map[string]*eni
	// assignTokens remembers AssignPrivateIpAddresses answers by ENI and
	// ClientToken.
	assignTokens map[string][]netip.Addr
	// prefixTokens and ipv6Tokens do the same for prefix and IPv6 assigns.
	prefixTokens map[string][]netip.Prefix
	ipv6Tokens   map[string][]netip.Addr
	// prefix6Tokens: the same for IPv6 prefix assigns.
	prefix6Tokens map[string][]netip.Prefix
	nonces        nonceBook
	sts           map[string]*stsCredential // by AccessKeyId, until long expired
	stsCurrent    map[string]*stsCredential // by instance: what metadata hands out now
	stsIssued     int
	authFailures  map[string]int // by error code
	mdTokens      map[string]mdToken
	faults        map[string]Fault
	attachFault   AttachFault
	describeLag   time.Duration
	injected      map[string]int // by fault kind
	stats         map[string]*ActionStats
	quotas        *quotaBook
	quotasNow     func() time.Time // the clock of the quota windows; tests move it
	fabricErrors  int
	lastFabric    string
	pending       []*fabricOp

	fabricMu sync.Mutex // serialises Fabric calls; never held with mu waiting on it
}

// Instance describes an ECS instance of the sim, as AddInstance created it.
type Instance struct {
	ID              string
	Hostname        string
	Type            string
	ZoneID          string
	VSwitchID       string
	SecurityGroupID string
	PrimaryENIID    string
	PrimaryMAC      net.HardwareAddr
	PrimaryIP       netip.Addr
	VSwitchCIDR     netip.Prefix
	Gateway         netip.Addr
	RAMRole         string // "" when the instance has none
}

// InstanceSpec asks for a new instance. Empty fields get defaults: a
// generated "i-…" ID, the ID as hostname, the first instance type, vSwitch
// and security group of the Config, and Config.DefaultRAMRole (NoRAMRole:
// none).
type InstanceSpec struct {
	ID, Hostname, Type, VSwitchID, SecurityGroupID string
	RAMRole                                        string
}

// New validates cfg and builds an empty region. May return an error
// wrapping ErrInvalidConfig.
func New(cfg Config) (*Cloud, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cloud{
		cfg:       cfg,
		types:     map[string]InstanceType{},
		sgs:       map[string]*secGroup{},
		sgTokens:  map[string]string{},
		otherVPCs: map[string]bool{},
		sgCapacity: map[string]int{
			sgTypeNormal:     defaultNormalGroupCapacity,
			sgTypeEnterprise: defaultEnterpriseGroupCapacity,
		},
		log:           slog.Default().With("component", "sim-cloud"),
		now:           time.Now,
		sts:           map[string]*stsCredential{},
		stsCurrent:    map[string]*stsCredential{},
		authFailures:  map[string]int{},
		vsws:          map[string]*vswitch{},
		instances:     map[string]*instance{},
		enis:          map[string]*eni{},
		macs:          map[string]bool{},
		hist:          newHistory(cfg.DescribeLag),
		createTokens:  map[string]*eni{},
		assignTokens:  map[string][]netip.Addr{},
		prefixTokens:  map[string][]netip.Prefix{},
		ipv6Tokens:    map[string][]netip.Addr{},
		prefix6Tokens: map[string][]netip.Prefix{},
		mdTokens:      map[string]mdToken{},
		faults:        map[string]Fault{},
		describeLag:   cfg.DescribeLag,
		injected:      map[string]int{},
		stats:         map[string]*ActionStats{},
		quotas:        newQuotaBook(cloneQuotas(cfg.Quotas)),
		quotasNow:     time.Now,
	}
	for _, t := range cfg.InstanceTypes {
		c.types[t.ID] = t
	}
	now := time.Now()
	// The configured groups are normal groups of the VPC without rules:
	// their members reach each other, as the nodes of a cluster do.
	for _, sg := range cfg.SecurityGroups {
		c.newSecGroupLocked(sg, sgTypeNormal, cfg.VPCID, sg, "", now)
	}
	for _, spec := range cfg.VSwitches {
		v := newVSwitch(spec)
		c.vsws[spec.ID] = v
		c.hist.recordFree(now, v.ID, v.free())
	}
	return c, nil
}

// AddInstance creates an instance with its primary ENI, already InUse, its
// primary IP taken from the vSwitch, and wires that ENI through the Fabric
// (Primary, DeviceIndex 0). May return an error wrapping
// ErrUnknownInstanceType, ErrUnknownVSwitch, ErrUnknownSecurityGroup,
// ErrInstanceExists, ErrVSwitchFull or ErrClosed, or the Fabric's error (the
// instance is then removed again).
func (c *Cloud) AddInstance(spec InstanceSpec) (Instance, error) {
	if spec.Type == "" {
		spec.Type = c.cfg.InstanceTypes[0].ID
	}
	if spec.VSwitchID == "" {
		spec.VSwitchID = c.cfg.VSwitches[0].ID
	}
	if spec.SecurityGroupID == "" {
		spec.SecurityGroupID = c.cfg.SecurityGroups[0]
	}
	switch spec.RAMRole {
	case "":
		spec.RAMRole = c.cfg.DefaultRAMRole
	case NoRAMRole:
		spec.RAMRole = ""
	}
	if !validRoleName(spec.RAMRole) {
		return Instance{}, fmt.Errorf("add instance: ram role %q: %w", spec.RAMRole, ErrInvalidConfig)
	}
	typ, ok := c.types[spec.Type]
	if !ok {
		return Instance{}, fmt.Errorf("add instance: %w: %s", ErrUnknownInstanceType, spec.Type)
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Instance{}, fmt.Errorf("add instance: %w", ErrClosed)
	}
	if g := c.sgs[spec.SecurityGroupID]; g == nil || g.vpcID != c.cfg.VPCID {
		c.mu.Unlock()
		return Instance{}, fmt.Errorf("add instance: %w: %s", ErrUnknownSecurityGroup, spec.SecurityGroupID)
	}
	vsw, ok := c.vsws[spec.VSwitchID]
	if !ok {
		c.mu.Unlock()
		return Instance{}, fmt.Errorf("add instance: %w: %s", ErrUnknownVSwitch, spec.VSwitchID)
	}
	if spec.ID == "" {
		spec.ID = c.newIDLocked("i-")
	}
	if _, dup := c.instances[spec.ID]; dup {
		c.mu.Unlock()
		return Instance{}, fmt.Errorf("add instance %s: %w", spec.ID, ErrInstanceExists)
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.ID
	}
	ips, ok := vsw.allocate(1)
	if !ok {
		c.mu.Unlock()
		return Instance{}, fmt.Errorf("add instance %s: %w: %s", spec.ID, ErrVSwitchFull, vsw.ID)
	}
	now := time.Now()
	e := c.newENILocked(eniTypePrimary, vsw, []string{spec.SecurityGroupID}, ips, now)
	e.status = statusInUse
	e.instanceID = spec.ID
	e.deviceIndex = 0
	inst := &instance{typ: typ, Instance: Instance{
		ID: spec.ID, Hostname: spec.Hostname, Type: typ.ID, ZoneID: vsw.ZoneID,
		VSwitchID: vsw.ID, SecurityGroupID: spec.SecurityGroupID, PrimaryENIID: e.id,
		PrimaryMAC: e.mac, PrimaryIP: ips[0], VSwitchCIDR: vsw.CIDR, Gateway: vsw.gateway,
		RAMRole: spec.RAMRole,
	}}
	c.instances[inst.ID] = inst
	c.instOrder = append(c.instOrder, inst.ID)
	c.hist.recordENI(now, e.id, e)
	c.hist.recordFree(now, vsw.ID, vsw.free())
	op := c.enqueueLocked("attach primary eni "+e.id, c.attachCall(e, inst))
	c.mu.Unlock()

	if err := c.flush(op); err != nil {
		c.removeInstance(inst.ID)
		return Instance{}, fmt.Errorf("add instance %s: fabric: %w", inst.ID, err)
	}
	out := inst.Instance
	out.PrimaryMAC = append(net.HardwareAddr(nil), e.mac...)
	return out, nil
}

// removeInstance undoes AddInstance after the fabric refused the primary ENI.
func (c *Cloud) removeInstance(id string) {
	c.mu.Lock()
	inst, ok := c.instances[id]
	if !ok {
		c.mu.Unlock()
		return
	}
	if e, ok := c.enis[inst.PrimaryENIID]; ok {
		c.forgetENILocked(e, time.Now())
	}
	delete(c.instances, id)
	for i, v := range c.instOrder {
		if v == id {
			c.instOrder = append(c.instOrder[:i], c.instOrder[i+1:]...)
			break
		}
	}
	c.securityChangedUnlock("remove instance " + id)
}

// Close stops the attach and detach timers; ENIs caught mid-way stay in
// Attaching or Detaching. The handlers keep answering.
func (c *Cloud) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.sgRetry != nil {
		c.sgRetry.Stop()
		c.sgRetry = nil
	}
	for _, e := range c.enis {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
	}
	return nil
}

// newENILocked creates an Available ENI holding ips and registers it.
func (c *Cloud) newENILocked(typ string, vsw *vswitch, sgs []string, ips []netip.Addr, now time.Time) *eni {
	c.seq++
	e := &eni{
		id:              c.newIDLocked("eni-"),
		typ:             typ,
		status:          statusAvailable,
		vswID:           vsw.ID,
		zoneID:          vsw.ZoneID,
		mac:             c.newMACLocked(),
		sgs:             sgs,
		ips:             ips,
		sourceDestCheck: true,
		created:         now.UTC().Truncate(time.Second),
		seq:             c.seq,
	}
	c.enis[e.id] = e
	return e
}

// idAlphabet is what follows the dash in Alibaba resource IDs.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// RandomID returns n random characters of the alphabet Alibaba resource
// IDs use after their dash.
func RandomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	var sb strings.Builder
	for _, x := range b {
		sb.WriteByte(idAlphabet[int(x)%len(idAlphabet)])
	}
	return sb.String()
}

// newIDLocked returns prefix plus 20 random characters, unique among the
// ENIs and instances, e.g. "eni-bp1b2c3d4e5f6g7h8i9j".
func (c *Cloud) newIDLocked(prefix string) string {
	for {
		id := prefix + RandomID(20)
		_, eniTaken := c.enis[id]
		_, instTaken := c.instances[id]
		if !eniTaken && !instTaken {
			return id
		}
	}
}

// newMACLocked returns an unused MAC in Alibaba's 00:16:3e OUI.
func (c *Cloud) newMACLocked() net.HardwareAddr {
	for {
		mac := net.HardwareAddr{0x00, 0x16, 0x3e, 0, 0, 0}
		_, _ = rand.Read(mac[3:])
		if !c.macs[mac.String()] {
			c.macs[mac.String()] = true
			return mac
		}
	}
}
