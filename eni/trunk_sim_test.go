package eni_test

import (
	"context"
	"errors"
	"testing"

	"github.com/veni-cni/veni/eni"
)

// Ensure the SDK client makes a trunk (InstanceType=Trunk), attaches and
// detaches members through it, reads a member's trunk and VLAN ID
// (Attachment.TrunkNetworkInterfaceId, DeviceIndex), and reports the
// type's member limit as ErrQuotaExceeded.
func TestAlibabaClient_Sim_Trunk(t *testing.T) {
	env := mustSim(t, nil) // ecs.g7.large: 6 members
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	var _ eni.Trunking = c

	trunk := mustCreateENI(t, c, eni.CreateENIOptions{Trunk: true})
	if trunk.Type != eni.TypeTrunk {
		t.Fatalf("created type %q, want Trunk", trunk.Type)
	}
	if err := c.AttachENI(ctx, trunk.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(t, c, trunk.ID, eni.StatusInUse); got.Type != eni.TypeTrunk {
		t.Fatalf("described trunk as %q", got.Type)
	}
	vids := map[int]bool{}
	var members []string
	for range 6 {
		m := mustCreateENI(t, c, eni.CreateENIOptions{})
		if err := c.AttachMember(ctx, m.ID, env.inst.ID, trunk.ID); err != nil {
			t.Fatalf("attach member: %v", err)
		}
		got := waitStatus(t, c, m.ID, eni.StatusInUse)
		if got.Type != eni.TypeMember || got.TrunkID != trunk.ID || got.InstanceID != env.inst.ID {
			t.Fatalf("member described as type %q trunk %q instance %q", got.Type, got.TrunkID, got.InstanceID)
		}
		if got.DeviceIndex < 1 || got.DeviceIndex > 4094 || vids[got.DeviceIndex] {
			t.Fatalf("member VLAN ID %d (seen: %v)", got.DeviceIndex, vids)
		}
		vids[got.DeviceIndex] = true
		members = append(members, m.ID)
	}
	seventh := mustCreateENI(t, c, eni.CreateENIOptions{})
	if err := c.AttachMember(ctx, seventh.ID, env.inst.ID, trunk.ID); !errors.Is(err, eni.ErrQuotaExceeded) {
		t.Fatalf("seventh member: %v, want ErrQuotaExceeded", err)
	}
	if err := c.DetachMember(ctx, members[0], env.inst.ID, trunk.ID); err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(t, c, members[0], eni.StatusAvailable); got.Type != eni.TypeSecondary || got.TrunkID != "" {
		t.Fatalf("detached member: type %q trunk %q", got.Type, got.TrunkID)
	}
}
