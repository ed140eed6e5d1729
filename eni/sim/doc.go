// Package sim is the control plane of veni's simulated Alibaba Cloud VPC: an
// in-memory model of one region's VPC (vSwitches, ECS instances, ENIs and
// their private IPs) served over the real RPC-style OpenAPI (ECS 2014-05-26
// and VPC 2016-04-28) and the instance metadata service, so that the
// unchanged alibaba-cloud-sdk-go talks to it exactly as it talks to the
// cloud.
//
// What it models, as the cloud does it:
//   - signed requests (HMAC-SHA1, signature version 1.0) checked against
//     Config.Credentials, with timestamp checks (15 minutes either way) and
//     each nonce remembered until its request's timestamp leaves that
//     window, so no request can be replayed;
//   - instance RAM roles: metadata serves each instance's STS credentials
//     (ram/security-credentials/<role>), rotated at half their
//     Config.STSLifetime, and the API accepts them with their SecurityToken
//     until they expire (InvalidSecurityToken.Expired after);
//   - vSwitch CIDRs that really run out (the first address and the last three
//     are reserved; the gateway is the last address minus 2);
//   - per-instance-type ENI and per-ENI address quotas;
//   - prefix delegation (ops_prefix.go): aligned /28s carved from free
//     vSwitch space (a fragmented vSwitch can have free addresses and no
//     /28: InvalidVSwitchId.IpNotEnough), each taking one slot of the ENI's
//     IPv4 quota (InvalidOperation.Ipv4CountExceeded past it), exclusive
//     with addresses in one call; the Fabric is given every address of
//     every prefix, so the VPC routes and accepts them like secondary IPs;
//   - IPv6 addresses (ops_ipv6.go) from a vSwitch's /64 when IPv6 is
//     turned on (InvalidVSwitch.Ipv6NotTurnOn otherwise), bounded by
//     EniIpv6AddressQuantity (InvalidOperation.Ipv6NotSupport when it is
//     0, Ipv6CountExceeded past it), with the metadata keys ipv6s,
//     ipv6-gateway and vswitch-ipv6-cidr-block; the Fabric is given an
//     ENI's IPv6 addresses after its IPv4 ones (and the vSwitch's IPv6
//     gateway at attach), so the VPC routes and accepts them too;
//   - IPv6 prefix delegation (ops_ipv6.go): /80s of the vSwitch's /64
//     (AssignIpv6Addresses Ipv6PrefixCount or Ipv6Prefix.N, 1–10, never
//     with addresses in one call; CreateNetworkInterface Ipv6PrefixCount;
//     UnassignIpv6Addresses Ipv6Prefix.N), carved from the top of the /64
//     while single addresses come from its bottom, each taking one IPv6
//     slot (an inference), shown in Ipv6PrefixSets; a Fabric that
//     implements Prefix6Fabric is given an ENI's /80s with its addresses,
//     so the VPC routes and accepts every address of them;
//   - trunking (ops_trunk.go): one trunk ENI per instance of a type with
//     EniTrunkSupported, member ENIs attached through it with
//     TrunkNetworkInstanceId up to EniTotalQuantity − EniQuantity, each
//     shown as Type Member with its VLAN ID as Attachment.DeviceIndex
//     (unique per trunk, reused after a detach), and the reference's
//     trunk errors; a member is no NIC of the node: the Fabric carries
//     its traffic on the trunk's link, tagged with its VLAN ID
//     (AttachMember, DetachMember), judged by its own security groups;
//   - asynchronous attach (Available → Attaching → InUse) and detach
//     (InUse → Detaching → Available) driven by timers;
//   - security groups (secgroup.go): normal and enterprise groups with
//     ingress and egress rules (accept or drop, priority, protocol, port
//     range, CIDR or peer group), the ENI's groups at create and through
//     ModifyNetworkInterfaceAttribute, with ECS's errors for unknown,
//     classic, other-VPC, mixed-type and too many groups and for full
//     groups; a Fabric that implements SecurityGroupFabric is handed the
//     whole policy after every change and enforces it on real packets;
//   - ClientToken idempotency, tags (at create, and TagResources on ENIs,
//     with ECS's limits: 20 tags, 128 characters) and paging;
//   - eventual consistency: with Config.DescribeLag (or SetDescribeLag at
//     run time), Describe* answer from the state as it was that long ago;
//   - the account's API quotas, as Alibaba throttles (quotas.go): a budget
//     of calls per action per minute shared by every caller, a throttled
//     action refused with Throttling.User until the next minute, and the
//     x-ratelimit-user-api / x-ratelimit-user headers on every answer;
//     calls and throttles are counted by action and by minute;
//   - faults, all settable at run time and counted by kind (faults.go):
//     per action latency, throttling (Throttling.User, or Throttling.Api or
//     Throttling when asked) and 5xx
//     (InternalError, ServiceUnavailable); attaches that take long or stay
//     Attaching until cleared; vSwitches that run out of addresses
//     (InvalidVSwitchId.IpNotEnough) and recover.
//
// The sim refuses what it does not model (schema.go): every action lists
// the parameters it reads, and a request with any other one is answered
// InvalidParameter naming it, rather than served with different semantics
// than the caller asked for.
//
// ControlHandler is the control API "veni sim" commands use (state, faults
// and quotas); it answers local, non-browser JSON clients only.
//
// Cloud is safe for concurrent use. One mutex guards the model; nobody holds
// it while sleeping (latency faults) or while calling the Fabric. Fabric
// calls are made in the order the changes happened, through one queue, and
// an API call returns only after the fabric calls it caused have run. A
// Fabric may read the Cloud (Snapshot) but must not call its API or
// AddInstance from inside a Fabric method: that would wait on itself.
//
// This package owns only the model and its HTTP faces. It must not touch the
// kernel: packets are the business of the Fabric implementation (package
// eni/sim/fabric), which the Cloud drives through the interface in
// fabric.go. The instance metadata answers reflect the live model (there is
// no separate metadata lag).
package sim
