package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// mustENISim serves a simulated region on loopback with one instance that
// every metadata request is attributed to, and returns the flags that point
// "veni eni" at it.
func mustENISim(tb testing.TB) (*sim.Cloud, sim.Instance, []string) {
	tb.Helper()
	cfg := sim.DefaultConfig()
	cfg.AttachDelay = 20 * time.Millisecond
	cfg.DetachDelay = 20 * time.Millisecond
	cfg.Credentials = map[string]string{"LTAIcmd": "cmd-secret"}
	cfg.IdentifyCaller = func(*http.Request) (string, bool) { return "i-cmd", true }
	cloud, err := sim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cloud.Close() })
	inst, err := cloud.AddInstance(sim.InstanceSpec{ID: "i-cmd", Type: "ecs.g7.large"})
	if err != nil {
		tb.Fatal(err)
	}
	api := httptest.NewServer(cloud.APIHandler())
	tb.Cleanup(api.Close)
	md := httptest.NewServer(cloud.MetadataHandler())
	tb.Cleanup(md.Close)
	creds := filepath.Join(tb.TempDir(), "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"AccessKeyId":"LTAIcmd","AccessKeySecret":"cmd-secret"}`), 0o600); err != nil {
		tb.Fatal(err)
	}
	flags := []string{
		"--endpoint", strings.TrimPrefix(api.URL, "http://"), "--scheme", "http",
		"--credentials", creds, "--metadata", md.URL,
	}
	return cloud, inst, flags
}

func runVeni(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func mustRunVeni(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := runVeni(tb, args...)
	if err != nil {
		tb.Fatalf("veni %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func eniArgs(flags []string, sub ...string) []string {
	return append(append([]string{"eni"}, sub...), flags...)
}

func TestENICommand_Workflow(t *testing.T) {
	cloud, inst, flags := mustENISim(t)

	id := strings.TrimSpace(mustRunVeni(t, eniArgs(flags, "create", "--vswitch", "vsw-sim-a",
		"--security-group", sim.DefaultSecurityGroupID, "--tag", "owner=demo", "--ips", "1")...))
	if !strings.HasPrefix(id, "eni-") || strings.Contains(id, "\n") {
		t.Fatalf("create printed %q, want one eni id", id)
	}

	mac := strings.TrimSpace(mustRunVeni(t, eniArgs(flags, "attach", id)...))
	var want string
	for _, e := range cloud.Snapshot().ENIs {
		if e.ID == id {
			if e.Status != eni.StatusInUse || e.InstanceID != inst.ID {
				t.Fatalf("after attach the sim has %+v", e)
			}
			want = e.MAC
		}
	}
	if mac != want {
		t.Fatalf("attach printed %q, want the ENI's MAC %q", mac, want)
	}
	if again := strings.TrimSpace(mustRunVeni(t, eniArgs(flags, "attach", id)...)); again != mac {
		t.Fatalf("re-attach printed %q, want %q", again, mac)
	}

	table := mustRunVeni(t, eniArgs(flags, "list")...)
	if !strings.Contains(table, id) || !strings.Contains(table, inst.PrimaryENIID) || !strings.Contains(table, "owner=demo") {
		t.Fatalf("list table misses an eni:\n%s", table)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"instance", []string{"list", "-o", "json"}, 2},
		{"tag", []string{"list", "--tag", "owner=demo", "-o", "json"}, 1},
		{"all", []string{"list", "--all", "-o", "json"}, 2},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			var views []eniView
			if err := json.Unmarshal([]byte(mustRunVeni(t, eniArgs(flags, tc.args...)...)), &views); err != nil {
				t.Fatal(err)
			}
			if len(views) != tc.want {
				t.Fatalf("got %d enis, want %d: %+v", len(views), tc.want, views)
			}
		})
	}

	ips := strings.Fields(mustRunVeni(t, eniArgs(flags, "assign", id, "--count", "3")...))
	if len(ips) != 3 {
		t.Fatalf("assign printed %q, want 3 addresses", ips)
	}
	mustRunVeni(t, eniArgs(flags, append([]string{"unassign", id}, ips...)...)...)
	for _, e := range cloud.Snapshot().ENIs {
		if e.ID == id && len(e.IPs) != 2 {
			t.Fatalf("after unassign the eni holds %v, want primary + 1", e.IPs)
		}
	}

	if out := mustRunVeni(t, eniArgs(flags, "limits")...); !strings.Contains(out, "ecs.g7.large") || !strings.Contains(strings.Join(strings.Fields(out), " "), "ipv4 per eni 6") {
		t.Fatalf("limits of this instance:\n%s", out)
	} else if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, "max pods, ip mode 10") || !strings.Contains(flat, "max pods, prefix mode 160") {
		// 2 secondary ENIs x 5 addresses; x 16 per /28 in prefix mode.
		t.Fatalf("limits of this instance lack max pods (10, 160):\n%s", out)
	}
	var l struct {
		eni.InstanceLimits
		MaxPodsDualIPMode     int `json:"maxPodsDualIPMode"`
		MaxPodsDualPrefixMode int `json:"maxPodsDualPrefixMode"`
		MaxPodsIPv6PrefixMode int `json:"maxPodsIPv6PrefixMode"`
	}
	if err := json.Unmarshal([]byte(mustRunVeni(t, eniArgs(flags, "limits", "ecs.g6.large", "-o", "json")...)), &l); err != nil || l.ENIs != 2 {
		t.Fatalf("limits ecs.g6.large = %+v, %v", l, err)
	}
	// One secondary ENI: one IPv6 per ENI caps dual-stack IP mode at 1
	// pod; in prefix mode that one slot holds the /80 for all 5 x 16.
	if l.MaxPodsDualIPMode != 1 || l.MaxPodsDualPrefixMode != 80 {
		t.Fatalf("limits ecs.g6.large dual stack: ip mode %d, prefix mode %d, want 1 and 80", l.MaxPodsDualIPMode, l.MaxPodsDualPrefixMode)
	}
	// IPv6 only in prefix mode: the one secondary ENI carries its IPv6
	// quota of pods, whatever its /80 holds.
	if l.MaxPodsIPv6PrefixMode != l.IPv6PerENI || l.IPv6PerENI == 0 {
		t.Fatalf("limits ecs.g6.large ipv6 only, prefix mode: %d, want its ipv6 per eni %d", l.MaxPodsIPv6PrefixMode, l.IPv6PerENI)
	}

	mustRunVeni(t, eniArgs(flags, "detach", id)...)
	mustRunVeni(t, eniArgs(flags, "delete", id)...)
	if n := len(cloud.Snapshot().ENIs); n != 1 {
		t.Fatalf("after delete the sim holds %d enis, want the primary only", n)
	}
}

func TestENICommand_Errors(t *testing.T) {
	_, _, flags := mustENISim(t)
	cases := []struct {
		name    string
		args    []string
		wantErr string
		is      error
	}{
		{"create without vswitch", []string{"create", "--security-group", "sg-x"}, "--vswitch is required", nil},
		{"create without sg", []string{"create", "--vswitch", "vsw-sim-a"}, "--security-group is required", nil},
		{"bad tag", []string{"list", "--tag", "novalue"}, "want key=value", nil},
		{"bad output", []string{"list", "-o", "yaml"}, "want table or json", nil},
		{"assign zero", []string{"assign", "eni-x", "--count", "0"}, "at least 1", nil},
		{"unassign bad ip", []string{"unassign", "eni-x", "10.0.0.300"}, "unassign", nil},
		{"attach without eni", []string{"attach"}, "accepts 1 arg", nil},
		{"delete unknown", []string{"delete", "eni-nope"}, "InvalidEniId.NotFound", eni.ErrNotFound},
		{"attach unknown", []string{"attach", "eni-nope"}, "eni-nope", eni.ErrNotFound},
		{"create in unknown vswitch", []string{"create", "--vswitch", "vsw-nope", "--security-group", sim.DefaultSecurityGroupID}, "vsw-nope", eni.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runVeni(t, eniArgs(flags, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want it to wrap %v", err, tc.is)
			}
		})
	}
}

func TestENICommand_NoCredentials(t *testing.T) {
	_, _, flags := mustENISim(t)
	for _, n := range []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"} {
		t.Setenv(n, "")
	}
	var noCreds []string
	for i := 0; i < len(flags); i += 2 {
		if flags[i] != "--credentials" {
			noCreds = append(noCreds, flags[i], flags[i+1])
		}
	}
	_, err := runVeni(t, eniArgs(noCreds, "list")...)
	if err == nil || !strings.Contains(err.Error(), "ALIBABA_CLOUD_ACCESS_KEY_ID") {
		t.Fatalf("err = %v, want a hint at the credential variables", err)
	}
}
