package config

import (
	"encoding/json"
	"slices"
	"testing"
)

// Ensure MergePatch follows RFC 7396's examples (section 3, the table of
// Appendix A).
func TestMergePatch_RFC7396(t *testing.T) {
	cases := []struct{ doc, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{``, `{"max_pool_size":7}`, `{"max_pool_size":7}`},
	}
	for _, tc := range cases {
		got, err := MergePatch([]byte(tc.doc), []byte(tc.patch))
		if err != nil {
			t.Fatalf("%s + %s: %v", tc.doc, tc.patch, err)
		}
		if !jsonEqual(t, string(got), tc.want) {
			t.Errorf("%s + %s = %s, want %s", tc.doc, tc.patch, got, tc.want)
		}
	}
	if _, err := MergePatch([]byte(`{}`), []byte(`[1]`)); err == nil {
		t.Error("a patch that is not an object was accepted")
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// Ensure a layer that changes fields a running node cannot take keeps
// their old values, takes the live ones, and that pinning the refused
// fields in the layer makes anyone who merges it read the kept values.
func TestKeepUnlive_AndPin(t *testing.T) {
	cur, _, err := Parse([]byte(`{"max_pool_size": 5, "ip_stack": "ipv4", "datapath": "plain"}`))
	if err != nil {
		t.Fatal(err)
	}
	layer := []byte(`{"max_pool_size": 9, "ip_stack": "dual", "datapath": "ebpf", "vswitches": {"z": ["vsw-1"]}}`)
	merged, err := MergePatch([]byte(`{"max_pool_size": 5, "ip_stack": "ipv4", "datapath": "plain"}`), layer)
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := Parse(merged)
	if err != nil {
		t.Fatal(err)
	}
	if got := Changed(cur, next); !slices.Equal(got, []string{"datapath", "ip_stack", "max_pool_size", "vswitches"}) {
		t.Fatalf("Changed = %v", got)
	}
	kept, refused := KeepUnlive(cur, next)
	if !slices.Equal(refused, []string{"datapath", "ip_stack"}) || kept.IPStack != "ipv4" || kept.Datapath != "plain" || kept.MaxPoolSize != 9 || len(kept.VSwitches["z"]) != 1 {
		t.Fatalf("KeepUnlive = %+v, refused %v", kept, refused)
	}
	pinned, err := Pin(layer, cur, refused)
	if err != nil {
		t.Fatal(err)
	}
	again, err := MergePatch([]byte(`{"max_pool_size": 5, "ip_stack": "ipv4", "datapath": "plain"}`), pinned)
	if err != nil {
		t.Fatal(err)
	}
	read, _, err := Parse(again)
	if err != nil {
		t.Fatal(err)
	}
	if d := Changed(kept, read); len(d) != 0 {
		t.Fatalf("the plugin would read %v differently from the daemon: %+v vs %+v", d, read, kept)
	}
}
