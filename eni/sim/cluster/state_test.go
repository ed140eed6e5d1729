package cluster

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testState(dir string) State {
	return State{
		Version: StateVersion, PID: 4242, Name: "vte-abc", Dir: dir, Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Region: "cn-hangzhou", VPCID: "vpc-sim-main", VPCCIDR: netip.MustParsePrefix("172.30.0.0/16"), VPCNetNS: "vte-abc-vpc",
		APIEndpoint: "http://100.100.0.10", MetadataEndpoint: "http://100.100.100.200", ControlEndpoint: "http://127.0.0.1:40000",
		Credentials: filepath.Join(dir, CredentialsFile),
		Nodes: []Node{
			{Name: "node-1", InstanceID: "i-aaa", InstanceType: "ecs.g7.xlarge", NetNS: "vte-abc-node-1", NetNSPath: "/run/netns/vte-abc-node-1",
				PrimaryENIID: "eni-1", PrimaryIP: netip.MustParseAddr("172.30.1.1"), MAC: "02:00:00:00:00:01", VSwitchID: "vsw-sim-a"},
			{Name: "node-2", InstanceID: "i-bbb", NetNS: "vte-abc-node-2"},
		},
	}
}

// mustFakeServer starts a process whose command line says "sim serve", as
// ServerAlive looks for, and returns its pid.
func mustFakeServer(tb testing.TB) int {
	tb.Helper()
	// "sleep 60; :" so that the shell cannot exec sleep in its place
	// (dash does for a lone command), which would change the command line.
	cmd := exec.Command("sh", "-c", "sleep 60; :", "sim", "serve")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Until the child has exec'd, its command line is this test's.
	cmdline := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if b, err := os.ReadFile(cmdline); err == nil && strings.Contains(string(b), "sim\x00serve") {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("fake server %d did not exec within 5s", cmd.Process.Pid)
		}
	}
	return cmd.Process.Pid
}

// Ensure state.json reads back as written, 0600.
func TestState_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := testState(dir)
	if err := writeJSONFile(filepath.Join(dir, StateFile), want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

// Ensure the JSON names that scripts and tests read (jq '.nodes[].instanceId')
// do not change.
func TestState_JSONNames(t *testing.T) {
	dir := t.TempDir()
	if err := writeJSONFile(filepath.Join(dir, StateFile), testState(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, StateFile))
	for _, key := range []string{`"version": 2`, `"pid"`, `"controlEndpoint"`, `"credentials"`, `"nodes"`, `"instanceId"`, `"netnsPath"`, `"primaryIp"`, `"mac"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("state.json lacks %s:\n%s", key, b)
		}
	}
}

func TestRunning_Errors(t *testing.T) {
	live := mustFakeServer(t)
	cases := []struct {
		name    string
		state   func(dir string) *State // nil: no state file
		wantErr error
		wantMsg string
	}{
		{"no state", nil, ErrNotRunning, "no sim running"},
		{"server gone", func(dir string) *State { st := testState(dir); st.PID = 1 << 30; return &st }, ErrNotRunning, "is gone"},
		{"old format", func(dir string) *State { st := testState(dir); st.PID, st.Version = live, 0; return &st }, ErrStateVersion, "state format 1, this veni reads 2"},
		{"current", func(dir string) *State { st := testState(dir); st.PID = live; return &st }, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.state != nil {
				if err := writeJSONFile(filepath.Join(dir, StateFile), tc.state(dir), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Running(dir)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

func TestState_FindNode(t *testing.T) {
	st := testState(t.TempDir())
	cases := []struct {
		key, want string
	}{
		{"node-2", "node-2"},
		{"i-aaa", "node-1"},
		{"vte-abc-node-2", "node-2"},
		{"node-3", ""},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			n, err := st.FindNode(tc.key)
			if tc.want == "" {
				if !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "node-1, node-2") {
					t.Fatalf("err = %v, want ErrNoNode listing the nodes", err)
				}
				return
			}
			if err != nil || n.Name != tc.want {
				t.Fatalf("FindNode(%s) = %s, %v; want %s", tc.key, n.Name, err, tc.want)
			}
		})
	}
}

func TestServerAlive(t *testing.T) {
	cases := []struct {
		name string
		pid  int
		want bool
	}{
		{"zero", 0, false},
		{"this test is not a sim server", os.Getpid(), false},
		{"no such process", 1 << 30, false},
		{"a sim serve command line", mustFakeServer(t), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ServerAlive(tc.pid); got != tc.want {
				t.Fatalf("ServerAlive(%d) = %v, want %v", tc.pid, got, tc.want)
			}
		})
	}
}

// Ensure writeFileAtomic tightens the mode of a file that existed looser.
func TestWriteFileAtomic_TightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veni.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", []byte("left by a crash"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte(`{"access_key_secret":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
