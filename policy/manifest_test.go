package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadDir_Testdata reads testdata/manifests (nested folders, YAML and
// JSON, multi-document, a List, a skipped Deployment) and traces flows.
func TestLoadDir_Testdata(t *testing.T) {
	s, err := LoadDir("testdata/manifests")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.PolicyNames(), " "), "shop/default-deny shop/scrape shop/web-to-db"; got != want {
		t.Errorf("policies %q, want %q", got, want)
	}
	for _, tc := range []expect{
		{"shop/web", "shop/db", "TCP/5432", true},
		{"shop/web", "shop/db", "TCP/5433", false},
		{"ops/prom", "shop/db", "TCP/5432", false},
		{"ops/prom", "shop/web", "TCP/8080", true},
		{"ops/prom", "shop/db", "TCP/9150", true},
		{"shop/db", "shop/web", "TCP/8080", false},
		{"192.168.0.10", "shop/web", "TCP/8080", true}, // the node's kubelet
		{"shop/web", "ops/prom", "TCP/9090", true},
	} {
		proto, port := parseFlow(t, tc.flow)
		tr, err := s.Trace(ep(t, tc.from), ep(t, tc.to), proto, port)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Allowed != tc.allowed {
			t.Errorf("%s -> %s %s: allowed=%v, want %v (%s / %s)", tc.from, tc.to, tc.flow, tr.Allowed, tc.allowed, tr.Egress.Reason, tr.Ingress.Reason)
		}
	}
	db, _ := s.Pod(PodRef{"shop", "db"})
	if len(db.IPs) != 2 {
		t.Errorf("shop/db addresses %v, want the two of status.podIPs", db.IPs)
	}
}

// TestParseManifests_Errors checks that every error names the file, the
// document and its line, and says what is wrong.
func TestParseManifests_Errors(t *testing.T) {
	const np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
	for _, tc := range []struct {
		name, doc string
		want      []string // substrings of the error
	}{
		{"yaml syntax", "kind: Service\nmetadata: {name: s}\n---\nmetadata: {name: [\n", []string{"f.yaml document 2 (line 4)"}},
		{"no kind", "metadata: {name: a}\n", []string{"document 1 (line 1)", "no kind"}},
		{"no name", "---\n# x\n\n" + np + "metadata: {namespace: a}\nspec: {podSelector: {}}\n", []string{"document 1 (line 4)", "no metadata.name"}},
		{"misspelt spec field", np + "metadata: {name: a}\nspec: {podSelecter: {}}\n", []string{"NetworkPolicy default/a", `unknown field "podSelecter"`}},
		{"except outside the cidr", np + "metadata: {name: a, namespace: b}\nspec:\n  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]\n",
			[]string{"NetworkPolicy b/a", "egress[0]: peer[0]: ipBlock except 10.1.0.0/24: not a strict subset of 10.0.0.0/16"}},
		{"bare y", np + "metadata: {name: a}\nspec: {podSelector: {matchLabels: {ns: y}}}\n", []string{"quote it"}},
		{"endPort with a named port", np + "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}\n", []string{`endPort with the named port "http"`}},
		{"unknown protocol", np + "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}\n", []string{`protocol "ICMP"`}},
		{"calico policy", "apiVersion: crd.projectcalico.org/v1\nkind: NetworkPolicy\nmetadata: {name: a}\n", []string{"not supported"}},
		{"cilium policy", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\n", []string{"not supported"}},
		{"bad pod address", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {k8s.aliyun.com/pod-ips: 10.0.0.300}}\n", []string{"Pod default/p", `address "10.0.0.300"`}},
		{"twice in a file", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
			[]string{"document 2 (line 5)", "Namespace a already defined at f.yaml document 1 (line 1)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifests("f.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrManifest) {
				t.Errorf("%v does not wrap ErrManifest", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestReadDir_Duplicate names both files of an object defined twice.
func TestReadDir_Duplicate(t *testing.T) {
	dir := t.TempDir()
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\n"
	for _, f := range []string{"a.yaml", "b.yml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(pod), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ReadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "b.yml document 1 (line 1): Pod ns/p already defined at "+filepath.Join(dir, "a.yaml")) {
		t.Fatalf("error %v", err)
	}
}
