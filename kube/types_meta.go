package kube

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Object is what every top-level API object in this package is: it has an
// ObjectMeta. Every type here embeds ObjectMeta, which provides Meta.
type Object interface {
	Meta() *ObjectMeta
}

// TypeMeta is apiVersion and kind, inlined in every object.
type TypeMeta struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
}

// setType fills apiVersion and kind; embedding TypeMeta makes a type
// writable by Create and Update.
func (t *TypeMeta) setType(apiVersion, kind string) { t.APIVersion, t.Kind = apiVersion, kind }

// ObjectMeta holds the metadata fields veni reads and writes
// (metav1.ObjectMeta minus managedFields, finalizers, generation, ...).
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp Time              `json:"creationTimestamp,omitzero"`
	DeletionTimestamp *Time             `json:"deletionTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
	Finalizers        []string          `json:"finalizers,omitempty"`
}

// Meta returns m itself; embedding ObjectMeta makes a type an Object.
func (m *ObjectMeta) Meta() *ObjectMeta { return m }

// Key is the cache key of an object: "namespace/name", or "name" for
// cluster-scoped objects (client-go's MetaNamespaceKeyFunc).
func (m *ObjectMeta) Key() string { return Key(m.Namespace, m.Name) }

// Key returns "namespace/name", or name when namespace is empty.
func Key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// OwnerReference is the minimal metav1.OwnerReference.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller,omitempty"`
}

// ListMeta is the metadata of a list: its resourceVersion, and the continue
// token when the list was cut by limit.
type ListMeta struct {
	ResourceVersion    string `json:"resourceVersion,omitempty"`
	Continue           string `json:"continue,omitempty"`
	RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
}

// Time is metav1.Time: RFC 3339 with second precision on the wire, null when
// zero.
type Time struct{ time.Time }

// NewTime returns t truncated to the wire's precision.
func NewTime(t time.Time) Time { return Time{t.Truncate(time.Second)} }

// MarshalJSON writes RFC 3339 UTC, or null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(time.RFC3339) + `"`), nil
}

// UnmarshalJSON reads RFC 3339 or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("time %s: %w", b, err)
	}
	pt, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	t.Time = pt
	return nil
}

// MicroTime is metav1.MicroTime: RFC 3339 with microseconds, used by Lease
// and by events.k8s.io fields.
type MicroTime struct{ time.Time }

const microTimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// NewMicroTime returns t truncated to microseconds.
func NewMicroTime(t time.Time) MicroTime { return MicroTime{t.Truncate(time.Microsecond)} }

// MarshalJSON writes RFC 3339 with six fractional digits UTC, or null.
func (t MicroTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(microTimeFormat) + `"`), nil
}

// UnmarshalJSON reads RFC 3339 with or without fractions, or null.
func (t *MicroTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("microtime %s: %w", b, err)
	}
	pt, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("microtime: %w", err)
	}
	t.Time = pt
	return nil
}

// IntOrString is intstr.IntOrString: a port given by number or by name.
type IntOrString struct {
	IsString bool   // StrVal is set, IntVal is not
	IntVal   int32  // the number when !IsString
	StrVal   string // the name when IsString
}

// FromInt returns a numeric IntOrString.
func FromInt(i int32) IntOrString { return IntOrString{IntVal: i} }

// FromString returns a named IntOrString.
func FromString(s string) IntOrString { return IntOrString{IsString: true, StrVal: s} }

// String returns the number or the name.
func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// MarshalJSON writes a JSON number or string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return strconv.AppendInt(nil, int64(v.IntVal), 10), nil
}

// UnmarshalJSON reads a JSON number or string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString, v.IntVal = true, 0
		return json.Unmarshal(b, &v.StrVal)
	}
	v.IsString, v.StrVal = false, ""
	return json.Unmarshal(b, &v.IntVal)
}

// Status is metav1.Status: what the API server returns on failure, and in
// a watch ERROR event.
type Status struct {
	TypeMeta `json:",inline"`
	Status   string         `json:"status,omitempty"` // "Success" or "Failure"
	Message  string         `json:"message,omitempty"`
	Reason   string         `json:"reason,omitempty"` // e.g. "NotFound", "Conflict", "Expired"
	Details  *StatusDetails `json:"details,omitempty"`
	Code     int32          `json:"code,omitempty"` // HTTP status code
}

// StatusDetails names the object a Status is about.
type StatusDetails struct {
	Name              string `json:"name,omitempty"`
	Group             string `json:"group,omitempty"`
	Kind              string `json:"kind,omitempty"`
	UID               string `json:"uid,omitempty"`
	RetryAfterSeconds int32  `json:"retryAfterSeconds,omitempty"`
}
