package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestSnapshot_Show_Text pins the text `veni policy show` prints for the
// testdata manifests' database pod.
func TestSnapshot_Show_Text(t *testing.T) {
	s, err := LoadDir("testdata/manifests")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Show(PodRef{"shop", "db"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	const want = `pod shop/db  addresses 10.0.0.3,fd00::3  node node-1
identity shop|app=db|pg=5432/TCP
ingress: isolated by shop/default-deny, shop/scrape, shop/web-to-db
  from 10.0.0.2/32      TCP/5432       shop/web-to-db rule 0 peer 0
  from 10.0.0.4/32      TCP/8080       shop/scrape rule 0 peer 0
                        TCP/9100-9200  shop/scrape rule 0 peer 0
  from 192.168.0.10/32  any            node
  by identity:
    ops|app=prom|               TCP/8080       shop/scrape rule 0 peer 0
                                TCP/9100-9200  shop/scrape rule 0 peer 0
    reserved:host               any            node
    shop|app=web|http=8080/TCP  TCP/5432       shop/web-to-db rule 0 peer 0
egress: not isolated (no policy selects the pod for egress): everything allowed
maps: 3 LPM entries, 4 port rules, ~236 B; identity layout 10 entries, ~580 B
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

// TestTrace_WriteText pins the text `veni policy trace` prints.
func TestTrace_WriteText(t *testing.T) {
	s, err := LoadDir("testdata/manifests")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, flow, want string }{
		{"shop/web", "shop/db", "TCP/5432", `TCP/5432 from shop/web (10.0.0.2, pod on node-1) to shop/db (10.0.0.3, pod on node-1): allowed
  egress of shop/web: not isolated for egress: no policy selects the pod
  ingress of shop/db: allowed: TCP/5432 from 10.0.0.2 by shop/web-to-db rule 0 peer 0 [entry 10.0.0.2/32; all: shop/web-to-db rule 0 peer 0]
`},
		{"8.8.8.8", "shop/db", "UDP/53", `UDP/53 from 8.8.8.8 (external) to shop/db (10.0.0.3, pod on node-1): denied
  egress of 8.8.8.8: external: no NetworkPolicy applies
  ingress of shop/db: denied: isolated for ingress by shop/default-deny, shop/scrape, shop/web-to-db; no rule allows UDP/53 from 8.8.8.8
`},
		{"192.168.0.10", "shop/web", "ICMP", `ICMP from 192.168.0.10 (node on node-1) to shop/web (10.0.0.2, pod on node-1): allowed
  egress of 192.168.0.10: node: no NetworkPolicy applies
  ingress of shop/web: allowed: 192.168.0.10 is the pod's own node (kubelet probes are never blocked) [entry 192.168.0.10/32; all: node]
`},
	} {
		proto, port := parseFlow(t, tc.flow)
		tr, err := s.Trace(ep(t, tc.from), ep(t, tc.to), proto, port)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_ = tr.WriteText(&b)
		if b.String() != tc.want {
			t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
		}
	}
}
