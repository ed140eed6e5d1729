package policy_test

import (
	"fmt"
	"os"

	"github.com/veni-cni/veni/policy"
)

// A standalone node's folder of manifests, compiled for one pod and
// traced, as `veni policy show` and `veni policy trace` will.
func ExampleSnapshot_Trace() {
	in, err := policy.ParseManifests("example.yaml", []byte(`
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}, annotations: {k8s.aliyun.com/pod-ips: 10.0.0.2}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}, annotations: {k8s.aliyun.com/pod-ips: 10.0.0.3}}
spec: {nodeName: node-1, containers: [{name: c}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {}}], ports: [{port: http}]}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := policy.New(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, port := range []uint16{8080, 9090} {
		tr, err := s.Trace(policy.PodEndpoint("shop", "db"), policy.PodEndpoint("shop", "web"), policy.ProtoTCP, port)
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = tr.WriteText(os.Stdout)
	}
	rs, _ := s.Compile(policy.PodRef{Namespace: "shop", Name: "web"})
	for _, e := range rs.Ingress.CIDRs {
		fmt.Println(e.Prefix, e.Rules)
	}
	// Output:
	// TCP/8080 from shop/db (10.0.0.3, pod on node-1) to shop/web (10.0.0.2, pod on node-1): allowed
	//   egress of shop/db: not isolated for egress: no policy selects the pod
	//   ingress of shop/web: allowed: TCP/8080 from 10.0.0.3 by shop/web-in rule 0 peer 0 [entry 10.0.0.3/32; all: shop/web-in rule 0 peer 0]
	// TCP/9090 from shop/db (10.0.0.3, pod on node-1) to shop/web (10.0.0.2, pod on node-1): denied
	//   egress of shop/db: not isolated for egress: no policy selects the pod
	//   ingress of shop/web: denied: isolated for ingress by shop/web-in; the entry 10.0.0.3/32 allows no TCP/9090
	// 10.0.0.2/32 [TCP/8080]
	// 10.0.0.3/32 [TCP/8080]
}
