package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// Configuration comes in layers: the node's file (veni.json, written by
// "veni install" or by hand), then the cluster's eni_conf (the
// kube-system/eni-config ConfigMap), then a node pool's (the ConfigMap a
// node label terway-config=NAME or veni-config=NAME names), each merged
// over the one before as an RFC 7396 JSON merge patch, as Terway does.

// MergePatch applies patch to doc as an RFC 7396 JSON merge patch: objects
// merge key by key, null deletes a key, anything else (arrays included)
// replaces. Both must be JSON objects.
//
// May return an error wrapping ErrInvalid.
func MergePatch(doc, patch []byte) ([]byte, error) {
	var d, p map[string]any
	if len(bytes.TrimSpace(doc)) > 0 {
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("merge patch: document: %w: %w", ErrInvalid, err)
		}
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("merge patch: patch is not a JSON object: %w: %w", ErrInvalid, err)
	}
	if d == nil {
		d = map[string]any{}
	}
	return json.Marshal(mergeObject(d, p))
}

func mergeObject(d, p map[string]any) map[string]any {
	for k, pv := range p {
		if pv == nil {
			delete(d, k)
			continue
		}
		pm, pIsObj := pv.(map[string]any)
		dm, dIsObj := d[k].(map[string]any)
		switch {
		case pIsObj && dIsObj:
			d[k] = mergeObject(dm, pm)
		case pIsObj:
			d[k] = mergeObject(map[string]any{}, pm)
		default:
			d[k] = pv
		}
	}
	return d
}

// liveFields are the fields a running daemon applies without a restart:
// they only steer what the next pool pass or GC does. Every other field
// (ip_stack, the datapath, the store, credentials and the cloud endpoint,
// which the running processes have already acted on or built clients
// from) changes only with a restart; a cluster layer that changes one is
// refused and the old value kept. exclusive_eni_type is live because the
// store guards it: a node takes it while it holds no ENI or address, and
// once set up refuses the other mode (ipam's ErrModeMismatch) with a clear
// error at every ADD and pool pass, which is Terway's rule for the label.
var liveFields = []string{
	"exclusive_eni_type",
	"max_pool_size", "min_pool_size", "ip_warm_up_size", "ipv4_prefix_count",
	"idle_ip_reclaim_after", "idle_ip_reclaim_interval", "idle_ip_reclaim_batch_size",
	"vswitches", "vswitch_selection_policy", "eni_selection_policy",
	"security_group", "security_groups", "resource_group_id", "eni_tags", "eni_tag_filter",
	"min_eni", "max_eni", "service_cidr", "host_stack_cidrs",
	"alloc_wait", "attach_timeout", "poll_interval", "vswitch_backoff", "eni_quota_backoff", "gc_grace",
	"cloud_sync_interval", "fixed_eni_hold",
}

// LiveField reports whether a running daemon applies a change of the
// eni_conf field name without a restart.
func LiveField(name string) bool { return slices.Contains(liveFields, name) }

// Changed returns the JSON names of the fields whose values differ between
// a and b, sorted.
func Changed(a, b Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	names := jsonFieldNames(t)
	for i := range t.NumField() {
		name := jsonName(t.Field(i))
		if !names[name] {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// KeepUnlive returns next with every field that cannot change on a running
// node reset to cur's value, and the names of those it reset.
func KeepUnlive(cur, next Config) (Config, []string) {
	var refused []string
	out := reflect.ValueOf(&next).Elem()
	old := reflect.ValueOf(cur)
	t := out.Type()
	changed := make(map[string]bool)
	for _, n := range Changed(cur, next) {
		changed[n] = true
	}
	for i := range t.NumField() {
		name := jsonName(t.Field(i))
		if !changed[name] || LiveField(name) {
			continue
		}
		out.Field(i).Set(old.Field(i))
		refused = append(refused, name)
	}
	slices.Sort(refused)
	return next, refused
}

func jsonName(f reflect.StructField) string {
	name, _, _ := bytes.Cut([]byte(f.Tag.Get("json")), []byte(","))
	return string(name)
}

// FieldNames returns the JSON names of every field Config knows, sorted.
func FieldNames() []string {
	return slices.Sorted(maps.Keys(jsonFieldNames(reflect.TypeFor[Config]())))
}

// Pin sets each of fields in the layer document to cur's value, so a layer
// whose change of those fields was refused (KeepUnlive) yields cur's values
// for whoever reads the merged result (the CNI plugin).
//
// May return an error wrapping ErrInvalid.
func Pin(layer []byte, cur Config, fields []string) ([]byte, error) {
	var m map[string]any
	if len(bytes.TrimSpace(layer)) > 0 {
		if err := json.Unmarshal(layer, &m); err != nil {
			return nil, fmt.Errorf("pin fields: %w: %w", ErrInvalid, err)
		}
	}
	if m == nil {
		m = map[string]any{}
	}
	v := reflect.ValueOf(cur)
	t := v.Type()
	for i := range t.NumField() {
		name := jsonName(t.Field(i))
		if !slices.Contains(fields, name) {
			continue
		}
		b, err := json.Marshal(v.Field(i).Interface())
		if err != nil {
			return nil, fmt.Errorf("pin %s: %w", name, err)
		}
		m[name] = json.RawMessage(b)
	}
	return json.Marshal(m)
}
