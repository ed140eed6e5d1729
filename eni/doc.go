// Package eni is veni's view of the cloud: what a node needs from Alibaba
// Cloud ECS and VPC (instance limits, ENIs, private IPs, vSwitches) and from
// the instance metadata service.
//
// Client is the interface the rest of veni programs against. The Alibaba
// implementation (NewAlibabaClient) is built on the official
// alibaba-cloud-sdk-go; every call passes through a per-action token bucket
// (DefaultRateLimits) and is retried with jittered exponential back-off
// (RetryPolicy) on throttling, 5xx, InternalError and timeouts, never on an
// error that says the request cannot succeed. Errors callers must branch on
// (vSwitch out of addresses, quota reached, not found, invalid parameter,
// wrong state, throttled, bad credentials) are sentinels in errors.go,
// matched with errors.Is; an *APIError keeps the code and request id.
//
// Trunking: CreateENIOptions.Trunk creates a trunk ENI (InstanceType
// Trunk); the optional interface Trunking attaches and detaches members
// through it (TrunkNetworkInstanceId), and a described member has Type
// TypeMember, its TrunkID and its DeviceIndex, which is its VLAN ID.
//
// Metadata reads 100.100.100.200 (token flow when offered, short timeouts,
// a few retries), including the instance RAM role's STS credentials.
//
// Credentials: a CredentialProvider is asked before every attempt, so a
// rotated STS token signs the next request. StaticCredentials holds a fixed
// pair; NewFileCredentials re-reads a credentials file and
// NewRAMRoleCredentials asks the metadata service again before the token
// expires (RefreshingCredentials has the rule). A credentials file that
// group or others may read or write is refused (CheckPrivate). Which source
// a node uses is decided by package node, not here.
//
// Secrets never leave this package: Credentials print, log and marshal
// redacted, and every error from the SDK passes through sdkError, which
// drops URL queries (the SDK's network errors are the whole signed request
// URL), the string to sign the API echoes, credential-looking fields and
// the known secret values. Network failures match ErrUnreachable; Temporary
// tells what a later try may fix.
//
// Lifetimes and cost: NewAlibabaClient and NewMetadata do no I/O and build
// no SDK client, and the package does nothing at init, because the CNI
// plugin constructs them on every invocation. An SDK client is built per
// HTTP attempt (sdk.Client is not safe for concurrent use); instance-type
// limits are cached for the AlibabaClient's lifetime. Both clients are safe
// for concurrent use.
//
// This package must not touch the node: no netlink, no store. The package
// eni/sim serves the same protocol for tests, the demo and laptops.
package eni
