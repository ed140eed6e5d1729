// Package node assembles what every node-side role of veni (CNI plugin,
// daemon, ipam and status commands) needs before it can act: the node's
// configuration file (eni_conf fields plus veni's own), the store it names,
// the node's facts (instance, zone, quotas, primary ENI) cached in that
// store, and a cloud client built only when a caller really calls the cloud.
//
// The warm CNI path must stay cheap: Load reads one file, Facts reads the
// store, and nothing here contacts the metadata service or the OpenAPI
// unless the cached facts are missing or a cloud method is called.
//
// This package must not touch links, routes or eBPF, and must not hold the
// store open: every store access is one short transaction.
package node
