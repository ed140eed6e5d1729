package sim

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

func tagENI(client *ecs.Client, ids []string, tags map[string]string) error {
	req := ecs.CreateTagResourcesRequest()
	req.ResourceType = "eni"
	req.ResourceId = &ids
	list := []ecs.TagResourcesTag{}
	for k, v := range tags {
		list = append(list, ecs.TagResourcesTag{Key: k, Value: v})
	}
	req.Tag = &list
	_, err := client.TagResources(req)
	return err
}

func tagsOf(s ecs.NetworkInterfaceSet) map[string]string {
	out := map[string]string{}
	for _, t := range s.Tags.Tag {
		out[t.TagKey] = t.TagValue
	}
	return out
}

// describeTagged lists the ENIs carrying every tag of want (Describe's
// Tag.N filter), by id.
func describeTagged(tb testing.TB, client *ecs.Client, status string, want map[string]string) map[string]ecs.NetworkInterfaceSet {
	tb.Helper()
	resp := describeENIs(tb, client, func(r *ecs.DescribeNetworkInterfacesRequest) {
		tags := []ecs.DescribeNetworkInterfacesTag{}
		for k, v := range want {
			tags = append(tags, ecs.DescribeNetworkInterfacesTag{Key: k, Value: v})
		}
		r.Tag = &tags
		r.Status = status
	})
	out := map[string]ecs.NetworkInterfaceSet{}
	for _, s := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
		out[s.NetworkInterfaceId] = s
	}
	return out
}

// Ensure TagResources adds tags to ENIs and replaces the values of keys
// they have, Describe finds ENIs by tag (the fixed-IP lookup: creator,
// pod, and a status), and the errors of ECS: unknown ENI or resource
// type, malformed keys and values, more than 20 tags, nothing changed
// by a refused call.
func TestCloud_TagResources(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	create := func(pod string) string {
		return mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
			r.Tag = &[]ecs.CreateNetworkInterfaceTag{{Key: "creator", Value: "veni"}, {Key: "veni.io/pod", Value: pod}}
		}).NetworkInterfaceId
	}
	a, b := create("ns/db-0"), create("ns/db-1")
	if err := tagENI(client, []string{a}, map[string]string{"veni.io/fixed": "true", "veni.io/pod": "ns/db-0"}); err != nil {
		t.Fatal(err)
	}
	if got := tagsOf(describeOne(t, client, a)); got["veni.io/fixed"] != "true" || got["creator"] != "veni" || len(got) != 3 {
		t.Errorf("tags of %s: %v", a, got)
	}
	// A key it has takes the new value.
	if err := tagENI(client, []string{a, b}, map[string]string{"veni.io/fixed-release-at": "2026-07-01T12:00:00Z"}); err != nil {
		t.Fatal(err)
	}
	if err := tagENI(client, []string{a}, map[string]string{"veni.io/fixed-release-at": "never"}); err != nil {
		t.Fatal(err)
	}
	if got := tagsOf(describeOne(t, client, a)); got["veni.io/fixed-release-at"] != "never" || len(got) != 4 {
		t.Errorf("tags of %s after a second tag: %v", a, got)
	}
	if got := tagsOf(describeOne(t, client, b)); got["veni.io/fixed-release-at"] != "2026-07-01T12:00:00Z" {
		t.Errorf("tags of %s: %v", b, got)
	}

	// The lookup: by creator, fixed and pod, and by status.
	found := describeTagged(t, client, "", map[string]string{"creator": "veni", "veni.io/fixed": "true", "veni.io/pod": "ns/db-0"})
	if _, ok := found[a]; !ok || len(found) != 1 {
		t.Errorf("lookup of ns/db-0 found %v, want only %s", keys(found), a)
	}
	if found := describeTagged(t, client, "", map[string]string{"veni.io/fixed": "true", "veni.io/pod": "ns/db-1"}); len(found) != 0 {
		t.Errorf("db-1 is not fixed, found %v", keys(found))
	}
	if found := describeTagged(t, client, "InUse", map[string]string{"veni.io/pod": "ns/db-0"}); len(found) != 0 {
		t.Errorf("Available eni found as InUse: %v", keys(found))
	}
	if found := describeTagged(t, client, "Available", map[string]string{"creator": "veni"}); len(found) != 2 {
		t.Errorf("creator=veni Available: %v, want %s and %s", keys(found), a, b)
	}

	long := strings.Repeat("x", 129)
	many := map[string]string{}
	for i := range 17 {
		many["k"+string(rune('a'+i))] = "v"
	}
	for _, tc := range []struct {
		name   string
		mutate func(*ecs.TagResourcesRequest)
		code   string
		status int
	}{
		{"unknown eni", func(r *ecs.TagResourcesRequest) { r.ResourceId = &[]string{a, "eni-nope"} }, CodeResourceNotFound, 404},
		{"instance", func(r *ecs.TagResourcesRequest) { r.ResourceType = "instance" }, CodeResourceTypeUnknown, 404},
		{"no type", func(r *ecs.TagResourcesRequest) { r.ResourceType = "" }, CodeMissingParameter, 400},
		{"no tag", func(r *ecs.TagResourcesRequest) { r.Tag = &[]ecs.TagResourcesTag{} }, CodeMissingParameter, 400},
		{"long key", func(r *ecs.TagResourcesRequest) { r.Tag = &[]ecs.TagResourcesTag{{Key: long, Value: "v"}} }, CodeTagKeyMalformed, 400},
		{"acs key", func(r *ecs.TagResourcesRequest) { r.Tag = &[]ecs.TagResourcesTag{{Key: "acs:x", Value: "v"}} }, CodeTagKeyMalformed, 400},
		{"long value", func(r *ecs.TagResourcesRequest) { r.Tag = &[]ecs.TagResourcesTag{{Key: "k", Value: long}} }, CodeTagValueMalformed, 400},
		{"21 tags", func(r *ecs.TagResourcesRequest) {
			list := []ecs.TagResourcesTag{}
			for k, v := range many {
				list = append(list, ecs.TagResourcesTag{Key: k, Value: v})
			}
			r.Tag = &list
		}, CodeTagQuotaExceeded, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ecs.CreateTagResourcesRequest()
			req.ResourceType, req.ResourceId = "eni", &[]string{a}
			req.Tag = &[]ecs.TagResourcesTag{{Key: "veni.io/extra", Value: "1"}}
			tc.mutate(req)
			_, err := client.TagResources(req)
			wantCode(t, err, tc.code, tc.status)
			if got := tagsOf(describeOne(t, client, a)); len(got) != 4 {
				t.Errorf("a refused call changed the tags: %v", got)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Ensure an ENI moves between instances of one zone keeping its address
// (detached from one trunk, attached as a member through another, with a
// VLAN ID of the new trunk), and never into another zone:
// AttachNetworkInterface answers InvalidOperation.AvailabilityZoneMismatch
// for an ENI (as an ENI or as a member) and an instance in different
// zones, and the ENI stays Available.
func TestCloud_MoveENI_Zones(t *testing.T) {
	c, _, inst, client := newTestAPI(t, func(cfg *Config) {
		cfg.VSwitches = append(cfg.VSwitches, VSwitchSpec{
			ID: "vsw-sim-other-zone", ZoneID: "cn-hangzhou-i", CIDR: netip.MustParsePrefix("172.30.3.0/24"),
		})
	})
	same := mustInstance(t, c, InstanceSpec{Type: "ecs.g7.large"})
	far := mustInstance(t, c, InstanceSpec{Type: "ecs.g7.large", VSwitchID: "vsw-sim-other-zone"})
	trunks := map[string]string{}
	for _, i := range []Instance{inst, same, far} {
		vsw := "vsw-sim-a"
		if i.ID == far.ID {
			vsw = "vsw-sim-other-zone"
		}
		tr := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.InstanceType, r.VSwitchId = "Trunk", vsw }).NetworkInterfaceId
		mustAttach(t, client, tr, i.ID)
		waitStatus(t, client, tr, "InUse")
		trunks[i.ID] = tr
	}
	m := mustCreateENI(t, client, nil)
	if err := attachMember(client, m.NetworkInterfaceId, inst.ID, trunks[inst.ID]); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, client, m.NetworkInterfaceId, "InUse")
	if err := detachMember(client, m.NetworkInterfaceId, inst.ID, trunks[inst.ID]); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, client, m.NetworkInterfaceId, "Available")

	wantCode(t, attachMember(client, m.NetworkInterfaceId, far.ID, trunks[far.ID]), CodeZoneMismatch, 403)
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId = m.NetworkInterfaceId, far.ID
	_, err := client.AttachNetworkInterface(req)
	wantCode(t, err, CodeZoneMismatch, 403)
	if got := describeOne(t, client, m.NetworkInterfaceId); got.Status != "Available" || got.InstanceId != "" {
		t.Fatalf("after refused attaches: %s on %q", got.Status, got.InstanceId)
	}

	if err := attachMember(client, m.NetworkInterfaceId, same.ID, trunks[same.ID]); err != nil {
		t.Fatalf("attach in the same zone: %v", err)
	}
	waitStatus(t, client, m.NetworkInterfaceId, "InUse")
	got := describeOne(t, client, m.NetworkInterfaceId)
	if got.PrivateIpAddress != m.PrivateIpAddress || got.InstanceId != same.ID || got.Attachment.TrunkNetworkInterfaceId != trunks[same.ID] || got.Attachment.DeviceIndex < 1 {
		t.Errorf("moved member: %s on %s through %s (vlan %d), want %s on %s through %s",
			got.PrivateIpAddress, got.InstanceId, got.Attachment.TrunkNetworkInterfaceId, got.Attachment.DeviceIndex, m.PrivateIpAddress, same.ID, trunks[same.ID])
	}
}
