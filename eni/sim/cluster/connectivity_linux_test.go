package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// Ensure a matrix prints as a table per probe kind and as JSON with one
// result per probe sent (a pod to itself is not), and that a failed probe
// makes both return ErrConnectivity.
func TestMatrix_Print_JSON(t *testing.T) {
	a := Endpoint{Name: "x/a", Kind: "pod", Node: "node-1", IP: netip.MustParseAddr("172.30.1.3")}
	b := Endpoint{Name: "y/b", Kind: "pod", Node: "node-2", IP: netip.MustParseAddr("172.30.2.3")}
	n := Endpoint{Name: "node-1", Kind: "node", Node: "node-1", IP: netip.MustParseAddr("172.30.1.2")}
	m := &Matrix{
		Sources: []Endpoint{a, b, n}, Targets: []Endpoint{a, b},
		Probes: []ProbeKind{{"tcp", 80}, {"sctp", 80}},
		Errs: [][][]error{
			{{nil, nil}, {nil, nil}, {nil, nil}},
			{{nil, errors.New("sctp INIT to 172.30.2.3:80: i/o timeout")}, {nil, nil}, {nil, nil}},
		},
	}
	var out bytes.Buffer
	if err := m.Print(&out); !errors.Is(err, ErrConnectivity) {
		t.Errorf("Print: %v, want ErrConnectivity", err)
	}
	for _, want := range []string{"# tcp/80", "# sctp/80", "a@node-1", "(node)@node-1", "FAIL", "7 of 8 probes passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := m.PrintJSON(&out); !errors.Is(err, ErrConnectivity) {
		t.Errorf("PrintJSON: %v, want ErrConnectivity", err)
	}
	var got MatrixJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 8 {
		t.Fatalf("%d results, want 8 (2 probe kinds x (2 pods x 1 other + 1 node x 2 pods))", len(got.Results))
	}
	var failed []MatrixResult
	for _, r := range got.Results {
		if !r.OK {
			failed = append(failed, r)
		}
	}
	want := []MatrixResult{{From: "x/a", To: "y/b", Protocol: "sctp", Port: 80, Error: "sctp INIT to 172.30.2.3:80: i/o timeout"}}
	if !reflect.DeepEqual(failed, want) {
		t.Errorf("failed %+v, want %+v", failed, want)
	}
}

func TestApplyLabels(t *testing.T) {
	for _, c := range []struct {
		in    map[string]string
		edits []string
		want  map[string]string
		err   bool
	}{
		{map[string]string{"app": "a"}, []string{"app=b", "tier=web"}, map[string]string{"app": "b", "tier": "web"}, false},
		{map[string]string{"app": "a", "tier": "web"}, []string{"tier-"}, map[string]string{"app": "a"}, false},
		{nil, []string{"k=v-"}, map[string]string{"k": "v-"}, false},
		{nil, []string{"=v"}, nil, true},
		{nil, []string{"nothing"}, nil, true},
	} {
		got, err := ApplyLabels(c.in, c.edits)
		if (err != nil) != c.err || !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("ApplyLabels(%v, %v) = %v, %v; want %v (error %v)", c.in, c.edits, got, err, c.want, c.err)
		}
	}
}
