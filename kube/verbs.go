package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// Resource describes one API resource and the Go type of its objects. The
// package defines the ones veni uses (Pods, Nodes, ...); T must embed
// ObjectMeta.
type Resource[T any] struct {
	Group      string // "" for core
	Version    string // "v1"
	Name       string // plural, lower case: "pods"
	Kind       string // "Pod"
	Namespaced bool
}

// APIVersion returns "v1" or "group/version".
func (r Resource[T]) APIVersion() string {
	if r.Group == "" {
		return r.Version
	}
	return r.Group + "/" + r.Version
}

// The resources veni reads and writes.
var (
	Pods            = Resource[Pod]{Version: "v1", Name: "pods", Kind: "Pod", Namespaced: true}
	Nodes           = Resource[Node]{Version: "v1", Name: "nodes", Kind: "Node"}
	Namespaces      = Resource[Namespace]{Version: "v1", Name: "namespaces", Kind: "Namespace"}
	ConfigMaps      = Resource[ConfigMap]{Version: "v1", Name: "configmaps", Kind: "ConfigMap", Namespaced: true}
	Events          = Resource[Event]{Version: "v1", Name: "events", Kind: "Event", Namespaced: true}
	NetworkPolicies = Resource[NetworkPolicy]{Group: "networking.k8s.io", Version: "v1", Name: "networkpolicies", Kind: "NetworkPolicy", Namespaced: true}
	Leases          = Resource[Lease]{Group: "coordination.k8s.io", Version: "v1", Name: "leases", Kind: "Lease", Namespaced: true}
	PodNetworkings  = Resource[PodNetworking]{Group: "network.alibabacloud.com", Version: "v1beta1", Name: "podnetworkings", Kind: "PodNetworking"}
)

// ListOptions select and page a list, and position a watch.
type ListOptions struct {
	// LabelSelector, e.g. "app=web,tier in (a,b)"; see LabelSelector.String.
	LabelSelector string
	// FieldSelector, e.g. "spec.nodeName=node-1".
	FieldSelector string
	// Limit is the page size of a list; 0 means no paging.
	Limit int64
	// Continue is the token of the next page, from ListMeta.Continue.
	Continue string
	// ResourceVersion: for a list, "" is a consistent read and "0" any
	// cached state; for a watch, where to start (events after it).
	ResourceVersion string
	// ResourceVersionMatch: "NotOlderThan" or "Exact" for lists.
	ResourceVersionMatch string
	// TimeoutSeconds ends a watch server-side after this long (the client
	// then resumes from its last resourceVersion).
	TimeoutSeconds int64
	// AllowWatchBookmarks asks for BOOKMARK events carrying the current
	// resourceVersion, so a resumed watch does not start too far back.
	AllowWatchBookmarks bool
}

func (o *ListOptions) query(watch bool) url.Values {
	q := url.Values{}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.FieldSelector != "" {
		q.Set("fieldSelector", o.FieldSelector)
	}
	if o.ResourceVersion != "" {
		q.Set("resourceVersion", o.ResourceVersion)
	}
	if watch {
		q.Set("watch", "true")
		if o.AllowWatchBookmarks {
			q.Set("allowWatchBookmarks", "true")
		}
		if o.TimeoutSeconds > 0 {
			q.Set("timeoutSeconds", strconv.FormatInt(o.TimeoutSeconds, 10))
		}
		return q
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.FormatInt(o.Limit, 10))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	if o.ResourceVersionMatch != "" {
		q.Set("resourceVersionMatch", o.ResourceVersionMatch)
	}
	return q
}

// WriteOptions apply to Create, Update and Patch.
type WriteOptions struct {
	// Subresource is written instead of the object, e.g. "status".
	Subresource string
	// FieldManager names the writer in managedFields. Zero means "veni".
	FieldManager string
	// DryRun asks the server to validate and not persist.
	DryRun bool
}

func (o *WriteOptions) query() url.Values {
	q := url.Values{}
	fm := o.FieldManager
	if fm == "" {
		fm = "veni"
	}
	q.Set("fieldManager", fm)
	if o.DryRun {
		q.Set("dryRun", "All")
	}
	return q
}

// DeleteOptions apply to Delete.
type DeleteOptions struct {
	// ResourceVersion, when set, deletes only that version of the object
	// (a precondition; a newer object gives a Conflict).
	ResourceVersion string
	// UID, when set, deletes only the object with that uid.
	UID string
	// GracePeriodSeconds overrides the object's grace period (pods).
	GracePeriodSeconds *int64
}

// PatchType is the Content-Type of a patch.
type PatchType string

// Patch types the API server accepts.
const (
	// MergePatch is RFC 7386 JSON merge patch: lists are replaced whole.
	MergePatch PatchType = "application/merge-patch+json"
	// StrategicMergePatch merges lists by their key (conditions by type,
	// containers by name). Core and built-in types only, not CRDs.
	StrategicMergePatch PatchType = "application/strategic-merge-patch+json"
	// JSONPatch is RFC 6902: a list of operations; "test" gives optimistic
	// concurrency without a resourceVersion.
	JSONPatch PatchType = "application/json-patch+json"
)

func metaOf[T any](obj *T) *ObjectMeta {
	o, ok := any(obj).(Object)
	if !ok {
		panic(fmt.Sprintf("kube: %T does not embed ObjectMeta", obj))
	}
	return o.Meta()
}

func (r Resource[T]) req(verb, method, namespace, name string) *request {
	if !r.Namespaced {
		namespace = ""
	}
	return &request{verb: verb, method: method, group: r.Group, version: r.Version, resource: r.Name, namespace: namespace, name: name}
}

// Get returns the object namespace/name (namespace ignored for
// cluster-scoped resources). May return an error for which IsNotFound is
// true.
func Get[T any](ctx context.Context, c *Client, r Resource[T], namespace, name string) (*T, error) {
	out := new(T)
	if err := c.call(ctx, r.req("get", "GET", namespace, name), out); err != nil {
		return nil, err
	}
	return out, nil
}

// Create creates obj in its namespace and returns the server's copy.
// May return an error for which IsAlreadyExists is true.
func Create[T any](ctx context.Context, c *Client, r Resource[T], obj *T, opts WriteOptions) (*T, error) {
	m := metaOf(obj)
	body, err := marshalWithType(r, obj)
	if err != nil {
		return nil, err
	}
	req := r.req("create", "POST", m.Namespace, "")
	if opts.Subresource != "" {
		req.name, req.subresource = m.Name, opts.Subresource
	}
	req.query, req.body = opts.query(), body
	out := new(T)
	if err := c.call(ctx, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Update replaces obj (or its opts.Subresource, e.g. "status") and returns
// the server's copy. obj's resourceVersion is a precondition: a stale one
// gives an error for which IsConflict is true. Fields this package does not
// model are erased, so only update types it models completely (see
// types_core.go); patch the others.
func Update[T any](ctx context.Context, c *Client, r Resource[T], obj *T, opts WriteOptions) (*T, error) {
	m := metaOf(obj)
	body, err := marshalWithType(r, obj)
	if err != nil {
		return nil, err
	}
	req := r.req("update", "PUT", m.Namespace, m.Name)
	req.subresource, req.query, req.body = opts.Subresource, opts.query(), body
	out := new(T)
	if err := c.call(ctx, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Patch applies patch (of type pt) to namespace/name, or to its
// opts.Subresource, and returns the server's copy.
func Patch[T any](ctx context.Context, c *Client, r Resource[T], namespace, name string, pt PatchType, patch []byte, opts WriteOptions) (*T, error) {
	req := r.req("patch", "PATCH", namespace, name)
	req.subresource, req.query, req.body, req.contentType = opts.Subresource, opts.query(), patch, string(pt)
	out := new(T)
	if err := c.call(ctx, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Delete deletes namespace/name. May return an error for which IsNotFound
// is true (callers that mean "make sure it is gone" ignore it).
func Delete[T any](ctx context.Context, c *Client, r Resource[T], namespace, name string, opts DeleteOptions) error {
	req := r.req("delete", "DELETE", namespace, name)
	body := map[string]any{"kind": "DeleteOptions", "apiVersion": "v1"}
	pre := map[string]string{}
	if opts.ResourceVersion != "" {
		pre["resourceVersion"] = opts.ResourceVersion
	}
	if opts.UID != "" {
		pre["uid"] = opts.UID
	}
	if len(pre) > 0 {
		body["preconditions"] = pre
	}
	if opts.GracePeriodSeconds != nil {
		body["gracePeriodSeconds"] = *opts.GracePeriodSeconds
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("kube delete %s: %w", r.Name, err)
	}
	req.body = b
	return c.call(ctx, req, nil)
}

// marshalWithType encodes obj with apiVersion and kind set from r (the
// server requires them on create and update), leaving obj unchanged.
func marshalWithType[T any](r Resource[T], obj *T) ([]byte, error) {
	cp := *obj
	if tm, ok := any(&cp).(interface{ setType(apiVersion, kind string) }); ok {
		tm.setType(r.APIVersion(), r.Kind)
	}
	b, err := json.Marshal(&cp)
	if err != nil {
		return nil, fmt.Errorf("kube encode %s: %w", r.Kind, err)
	}
	return b, nil
}
