// Package node assembles what every node-side role of veni (CNI plugin,
// daemon, ipam and status commands) needs before it can act: the node's
// configuration file (eni_conf fields plus veni's own), the store it names,
// the node's facts (instance, zone, quotas, primary ENI) cached in that
// store, a cloud client built only when a caller really calls the cloud,
// and the credentials that client signs with.
//
// The warm CNI path must stay cheap: Load reads one file (and stats
// credential_path for CredentialWarnings), Facts reads the store, and
// nothing here contacts the metadata service or the OpenAPI unless the
// cached facts are missing or a cloud method is called.
//
// Cloud credentials come from the first source of this chain that is
// configured (Env.CredentialSource names the one in use):
//
//  1. ram_role set to a role name: that instance RAM role, and nothing
//     else (access_key is then ignored, with a warning).
//  2. access_key / access_secret in the configuration file, refused while
//     the file is readable by group or others (chmod 600 it).
//  3. credential_path: a JSON file {AccessKeyId, AccessKeySecret,
//     SecurityToken, Expiration} (the shape of Terway's addon token), mode
//     0600; it is read again before Expiration, since whoever provides it
//     rotates it on disk. When the path does not exist the chain goes on.
//  4. ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN (or the
//     ALICLOUD_* names) in the environment.
//  5. the instance RAM role from metadata (ram/security-credentials/),
//     unless ram_role is "disabled".
//
// Explicit configuration comes first; the environment beats the RAM role
// because whoever starts the process sets it on purpose, while every ECS
// instance may have a role. STS credentials (file or RAM role) are fetched
// again when a quarter of their lifetime is left (eni.RefreshingCredentials)
// and every request is signed with the current ones. In a DaemonSet the
// plugin on the host and the daemon read the same host file,
// DefaultCredentialsPath; InstallCredentials puts the addon token there.
// When nothing yields credentials, the first cloud call fails with an error
// wrapping eni.ErrNoCredentials that lists what was tried and what to do.
// CredentialWarnings reports, for "veni status", what an operator should
// fix; no secret is ever logged or printed.
//
// This package must not touch links, routes or eBPF, and must not hold the
// store open: every store access is one short transaction.
package node
