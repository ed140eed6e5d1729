// Package eni is veni's view of the cloud: what a node needs from Alibaba
// Cloud ECS and VPC (instance limits, ENIs, private IPs, vSwitches) and from
// the instance metadata service.
//
// Client is the interface the rest of veni programs against. The Alibaba
// implementation (NewAlibabaClient) is built on the official
// alibaba-cloud-sdk-go; every call passes through a per-action token bucket
// and is retried with jittered exponential back-off on throttling, 5xx and
// timeouts. Errors callers must branch on (vSwitch out of addresses, quota
// reached, not found, invalid parameter, throttled) are sentinels in
// errors.go, matched with errors.Is.
//
// This package must not touch the node: no netlink, no store. The package
// eni/sim serves the same protocol for tests, the demo and laptops.
package eni
