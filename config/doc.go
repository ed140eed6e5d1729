// Package config is the node configuration: the eni_conf fields veni shares
// with Terway (same JSON names and meanings, so an existing eni-config
// ConfigMap works) plus veni's own, their defaults, their validation and
// the notes about fields veni does not know or does not act on.
//
// It is pure data: parsing and checking a document. Where the document
// comes from (a file on the node, ConfigMaps in the cluster) is the
// caller's business, and so is acting on it. This package must not touch
// the store, the cloud, links or the Kubernetes API.
package config
