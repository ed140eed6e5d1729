package eni_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// The sim's faults of the fault campaign, each seen through the unchanged
// SDK as the daemon sees it.

func statusOf(tb testing.TB, c eni.Client, id string) string {
	tb.Helper()
	got, err := c.ENIs(context.Background(), eni.ENIFilter{IDs: []string{id}})
	if err != nil {
		tb.Fatalf("list %s: %v", id, err)
	}
	if len(got) != 1 {
		return ""
	}
	return got[0].Status
}

func injected(env *simEnv, kind string) int { return env.cloud.Snapshot().Faults.Injected[kind] }

func TestAlibabaClient_SimFault_AttachDelay(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	env.cloud.SetAttachFault(sim.AttachFault{Delay: 400 * time.Millisecond})
	e := mustCreateENI(t, c, eni.CreateENIOptions{})
	start := time.Now()
	if err := c.AttachENI(context.Background(), e.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	if got := statusOf(t, c, e.ID); got != eni.StatusAttaching {
		t.Fatalf("right after attach: %s", got)
	}
	waitStatus(t, c, e.ID, eni.StatusInUse)
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("attach took %v under a 400ms attach fault", took)
	}
	if n := injected(env, sim.FaultAttachDelayed); n != 1 {
		t.Fatalf("%d delayed attaches counted, want 1", n)
	}
}

func TestAlibabaClient_SimFault_AttachNever(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	env.cloud.SetAttachFault(sim.AttachFault{Never: true})
	e := mustCreateENI(t, c, eni.CreateENIOptions{})
	if err := c.AttachENI(context.Background(), e.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // 15 times the sim's attach delay
	if got := statusOf(t, c, e.ID); got != eni.StatusAttaching {
		t.Fatalf("held attach is %s", got)
	}
	// A held ENI cannot be detached or deleted, as in the cloud.
	if err := c.DeleteENI(context.Background(), e.ID); !errors.Is(err, eni.ErrInvalidState) {
		t.Fatalf("delete of a held ENI: %v", err)
	}
	env.cloud.SetAttachFault(sim.AttachFault{})
	waitStatus(t, c, e.ID, eni.StatusInUse)
	if n := injected(env, sim.FaultAttachHeld); n != 1 {
		t.Fatalf("%d held attaches counted, want 1", n)
	}
}

func TestAlibabaClient_SimFault_DescribeLag(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	old := mustCreateENI(t, c, eni.CreateENIOptions{})
	if err := env.cloud.SetDescribeLag(400 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	fresh := mustCreateENI(t, c, eni.CreateENIOptions{})
	if got := statusOf(t, c, old.ID); got != eni.StatusAvailable {
		t.Fatalf("an ENI created before the lag was turned on vanished: %q", got)
	}
	if got := statusOf(t, c, fresh.ID); got != "" {
		t.Fatalf("a new ENI is visible at once under a 400ms lag: %q", got)
	}
	vs, err := c.VSwitches(context.Background(), "vsw-sim-a")
	if err != nil {
		t.Fatal(err)
	}
	if live := env.cloud.Snapshot().VSwitches[0].Free; vs[0].AvailableIPs != live+1 {
		t.Fatalf("lagged vswitch free %d, live %d: want the count before the create", vs[0].AvailableIPs, live)
	}
	time.Sleep(450 * time.Millisecond)
	if got := statusOf(t, c, fresh.ID); got != eni.StatusAvailable {
		t.Fatalf("after the lag: %q", got)
	}
	if injected(env, sim.FaultDescribeLagged) < 3 {
		t.Fatalf("lagged answers not counted: %v", env.cloud.Snapshot().Faults.Injected)
	}
	if err := env.cloud.SetDescribeLag(0); err != nil {
		t.Fatal(err)
	}
	if e := mustCreateENI(t, c, eni.CreateENIOptions{}); statusOf(t, c, e.ID) != eni.StatusAvailable {
		t.Fatal("with the lag off a new ENI is not visible at once")
	}
}

func TestAlibabaClient_SimFault_VSwitchRunsOut(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	ctx := context.Background()
	if err := env.cloud.SetVSwitchFault("vsw-sim-b", sim.VSwitchFault{MaxMore: 3}); err != nil {
		t.Fatal(err)
	}
	e := mustCreateENI(t, c, eni.CreateENIOptions{VSwitchID: "vsw-sim-b", SecondaryIPs: 1}) // 2 addresses
	vs, err := c.VSwitches(ctx, "vsw-sim-b")
	if err != nil || vs[0].AvailableIPs != 1 {
		t.Fatalf("capped vswitch reports %+v, %v; want 1 free", vs, err)
	}
	_, err = c.AssignPrivateIPs(ctx, e.ID, 2)
	var ae *eni.APIError
	if !errors.Is(err, eni.ErrVSwitchExhausted) || !errors.As(err, &ae) || ae.Code != sim.CodeVSwitchIPNotEnough || ae.HTTPStatus != http.StatusForbidden {
		t.Fatalf("err = %v, want InvalidVSwitchId.IpNotEnough (403)", err)
	}
	if _, err := c.AssignPrivateIPs(ctx, e.ID, 1); err != nil {
		t.Fatalf("the last allowed address: %v", err)
	}
	if _, err := c.CreateENI(ctx, eni.CreateENIOptions{VSwitchID: "vsw-sim-b", SecurityGroupIDs: []string{sim.DefaultSecurityGroupID}}); !errors.Is(err, eni.ErrVSwitchExhausted) {
		t.Fatalf("create in an exhausted vswitch: %v", err)
	}
	if n := injected(env, sim.FaultVSwitchExhausted); n != 2 {
		t.Fatalf("%d exhaustions counted, want 2", n)
	}
	if st := env.cloud.Faults().VSwitches["vsw-sim-b"]; st.MaxMore != 3 || st.Left != 0 {
		t.Fatalf("fault state %+v", st)
	}
	// Recovery.
	if err := env.cloud.ClearVSwitchFault("vsw-sim-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignPrivateIPs(ctx, e.ID, 2); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if vs, _ := c.VSwitches(ctx, "vsw-sim-b"); vs[0].AvailableIPs != 252-5 {
		t.Fatalf("after recovery the vswitch reports %d free, want %d", vs[0].AvailableIPs, 252-5)
	}
}

func TestAlibabaClient_SimFault_ServerErrors(t *testing.T) {
	cases := []struct {
		code       string
		wantStatus int
		wantIs     error
	}{
		{sim.CodeInternalError, http.StatusInternalServerError, nil},
		{sim.CodeServiceUnavailable, http.StatusServiceUnavailable, eni.ErrThrottled},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			env := mustSim(t, nil)
			c := mustClient(t, env.fastOptions())
			env.cloud.SetFault(eni.ActionDescribeVSwitches, sim.Fault{ErrorRate: 1, ErrorCode: tc.code})
			_, err := c.VSwitches(context.Background(), "vsw-sim-a")
			var ae *eni.APIError
			if !errors.As(err, &ae) || ae.Code != tc.code || ae.HTTPStatus != tc.wantStatus {
				t.Fatalf("err = %v, want %s with http %d", err, tc.code, tc.wantStatus)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("err = %v, want %v", err, tc.wantIs)
			}
			if !eni.Temporary(err) {
				t.Fatalf("a %s is not temporary", tc.code)
			}
			if n := injected(env, sim.FaultServerError); n != 4 { // every try of fastOptions' 4
				t.Fatalf("%d server errors counted, want 4", n)
			}
		})
	}
}

func TestAlibabaClient_SimFault_ClearAll(t *testing.T) {
	env := mustSim(t, nil)
	c := mustClient(t, env.fastOptions())
	env.cloud.SetFault("", sim.Fault{ThrottleRate: 1})
	env.cloud.SetAttachFault(sim.AttachFault{Never: true})
	if err := env.cloud.SetVSwitchFault("vsw-sim-a", sim.VSwitchFault{}); err != nil {
		t.Fatal(err)
	}
	if err := env.cloud.SetDescribeLag(time.Hour); err != nil {
		t.Fatal(err)
	}
	env.cloud.ClearFaults()
	e := mustCreateENI(t, c, eni.CreateENIOptions{})
	if err := c.AttachENI(context.Background(), e.ID, env.inst.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, e.ID, eni.StatusInUse)
	st := env.cloud.Faults()
	if len(st.Actions) != 0 || st.Attach != (sim.AttachFault{}) || st.DescribeLag != 0 || len(st.VSwitches) != 0 {
		t.Fatalf("faults left after ClearFaults: %+v", st)
	}
}
