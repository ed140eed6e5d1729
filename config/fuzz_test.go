package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fieldError is how Parse and Validate name the field they refuse.
var fieldError = regexp.MustCompile(`eni_conf field ([a-z0-9_]+)`)

// FuzzParse feeds Parse eni_conf documents (seeds in testdata/fuzz/FuzzParse).
// A document it refuses gets an error wrapping ErrInvalid that names a field
// veni knows, unless it is not a JSON object at all. A document it accepts
// validates, reports every key it does not know, and written out again
// (every field) reads back as the same config.
func FuzzParse(f *testing.F) {
	known := jsonFieldNames(reflect.TypeFor[Config]())
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, notes, err := Parse(doc)
		var raw map[string]json.RawMessage
		isObject := json.Unmarshal(doc, &raw) == nil
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !isObject {
				return
			}
			m := fieldError.FindStringSubmatch(err.Error())
			if m == nil || !known[m[1]] {
				t.Fatalf("error %q names no field veni knows", err)
			}
			return
		}
		if !isObject {
			t.Fatalf("accepted %q, which is not a JSON object", doc)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		for k := range raw {
			if known[k] {
				continue
			}
			if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, strconv.Quote(k)) }) {
				t.Fatalf("key %q neither known nor reported in %q", k, notes)
			}
		}
		written := mustWriteAll(t, cfg)
		again, notes, err := Parse(written)
		if err != nil {
			t.Fatalf("written out, the config is refused: %v\n%s", err, written)
		}
		if slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "unknown field") }) {
			t.Fatalf("written out, the config has fields Parse does not know: %q", notes)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("config changed on a round trip:\n%+v\n%+v", cfg, again)
		}
	})
}

// mustWriteAll writes every field of cfg, zero values included: Config's
// omitempty tags drop an explicit zero (gc_grace: 0), which would then read
// back as its default, so json.Marshal(cfg) alone is not the document that
// means cfg.
func mustWriteAll(tb testing.TB, cfg Config) []byte {
	tb.Helper()
	v := reflect.ValueOf(cfg)
	doc := make(map[string]json.RawMessage, v.NumField())
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		b, err := json.Marshal(v.Field(i).Interface())
		if err != nil {
			tb.Fatalf("marshal field %s: %v", name, err)
		}
		doc[name] = b
	}
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
