package policy

import (
	"errors"
	"testing"
)

// A Terway PodNetworking in a manifest folder reaches Input as written;
// other versions and unknown fields are refused, not half read.
func TestParseManifests_PodNetworking(t *testing.T) {
	in, err := ParseManifests("pn.yaml", []byte(`
apiVersion: network.alibabacloud.com/v1beta1
kind: PodNetworking
metadata:
  name: web
spec:
  allocationType:
    type: Fixed
    releaseStrategy: TTL
    releaseAfter: "5m0s"
  selector:
    podSelector:
      matchLabels:
        app: web
  securityGroupIDs: ["sg-web"]
  vSwitchOptions: ["vsw-sim-b"]
  eniOptions:
    eniType: Trunk
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.PodNetworkings) != 1 {
		t.Fatalf("got %d PodNetworkings", len(in.PodNetworkings))
	}
	p := in.PodNetworkings[0]
	if p.Name != "web" || p.Spec.ENIOptions.ENIType != "Trunk" || p.Spec.SecurityGroupIDs[0] != "sg-web" ||
		p.Spec.VSwitchOptions[0] != "vsw-sim-b" || p.Spec.AllocationType.ReleaseAfter != "5m0s" ||
		p.Spec.Selector.PodSelector.MatchLabels["app"] != "web" {
		t.Fatalf("read %+v", p)
	}
	for name, doc := range map[string]string{
		"old version":   "apiVersion: network.alibabacloud.com/v1alpha1\nkind: PodNetworking\nmetadata: {name: a}\n",
		"unknown field": "apiVersion: network.alibabacloud.com/v1beta1\nkind: PodNetworking\nmetadata: {name: a}\nspec: {securityGroups: [sg-a]}\n",
		"twice":         "apiVersion: network.alibabacloud.com/v1beta1\nkind: PodNetworking\nmetadata: {name: a}\n---\napiVersion: network.alibabacloud.com/v1beta1\nkind: PodNetworking\nmetadata: {name: a}\n",
	} {
		if _, err := ParseManifests("pn.yaml", []byte(doc)); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: err %v, want ErrManifest", name, err)
		}
	}
}
