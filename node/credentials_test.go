package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// simCloud is a simulated region on loopback with one instance that every
// metadata request is attributed to.
type simCloud struct {
	cloud    *sim.Cloud
	endpoint string
	metaURL  string
	inst     sim.Instance
}

func mustSimCloud(tb testing.TB, spec sim.InstanceSpec, mutate func(*sim.Config)) *simCloud {
	tb.Helper()
	cfg := sim.DefaultConfig()
	// A long-term key nobody uses switches authentication on, so STS
	// credentials are checked.
	cfg.Credentials = map[string]string{"LTAIunused": "unused-secret"}
	s := &simCloud{}
	cfg.IdentifyCaller = func(*http.Request) (string, bool) { return s.inst.ID, s.inst.ID != "" }
	if mutate != nil {
		mutate(&cfg)
	}
	cloud, err := sim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cloud.Close() })
	if s.inst, err = cloud.AddInstance(spec); err != nil {
		tb.Fatal(err)
	}
	api := httptest.NewServer(cloud.APIHandler())
	tb.Cleanup(api.Close)
	md := httptest.NewServer(cloud.MetadataHandler())
	tb.Cleanup(md.Close)
	s.cloud, s.endpoint, s.metaURL = cloud, strings.TrimPrefix(api.URL, "http://"), md.URL
	return s
}

// mustConfig writes a veni.json with fields, mode mode, pointing at s when
// s is not nil.
func mustConfig(tb testing.TB, s *simCloud, mode os.FileMode, fields map[string]any) string {
	tb.Helper()
	dir := tb.TempDir()
	conf := map[string]any{"store_path": filepath.Join(dir, "veni.db"), "region_id": "cn-hangzhou", "scheme": "http"}
	if s != nil {
		conf["endpoint"], conf["metadata_url"] = s.endpoint, s.metaURL
	}
	for k, v := range fields {
		conf[k] = v
	}
	b, _ := json.Marshal(conf)
	p := filepath.Join(dir, "veni.json")
	if err := os.WriteFile(p, b, mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		tb.Fatal(err)
	}
	return p
}

func mustCredentialsFile(tb testing.TB, mode os.FileMode, id, secret, token string, exp time.Time) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "credentials")
	writeCredentials(tb, p, mode, id, secret, token, exp)
	return p
}

func writeCredentials(tb testing.TB, p string, mode os.FileMode, id, secret, token string, exp time.Time) {
	tb.Helper()
	v := map[string]string{"AccessKeyId": id, "AccessKeySecret": secret}
	if token != "" {
		v["SecurityToken"] = token
		v["Expiration"] = exp.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(v)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		tb.Fatal(err)
	}
}

func clearCredentialEnv(tb testing.TB) {
	for _, n := range []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
		"ALICLOUD_SECRET_KEY", "ALIBABA_CLOUD_SECURITY_TOKEN", "ALICLOUD_SECURITY_TOKEN"} {
		tb.Setenv(n, "")
	}
}

func TestEnv_CredentialSource(t *testing.T) {
	good := mustCredentialsFile(t, 0o600, "LTAIfile", "file-secret", "", time.Time{})
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name    string
		mode    os.FileMode
		fields  map[string]any
		env     map[string]string
		want    string // source, with %s for the config path
		wantErr []error
	}{
		{"config keys", 0o600, map[string]any{"access_key": "LTAIcfg", "access_secret": "cfg-secret", "credential_path": good}, nil, "access_key in %s", nil},
		{"config keys world readable", 0o644, map[string]any{"access_key": "LTAIcfg", "access_secret": "cfg-secret"}, nil, "",
			[]error{eni.ErrNoCredentials, eni.ErrInsecureCredentials}},
		{"config keys group readable", 0o640, map[string]any{"access_key": "LTAIcfg", "access_secret": "cfg-secret"}, nil, "",
			[]error{eni.ErrInsecureCredentials}},
		{"half a pair", 0o600, map[string]any{"access_key": "LTAIcfg"}, nil, "", []error{eni.ErrNoCredentials}},
		{"credential file", 0o644, map[string]any{"credential_path": good}, map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "b"},
			"credential_path " + good, nil},
		{"missing file falls to env", 0o644, map[string]any{"credential_path": missing}, map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "b"},
			"environment", nil},
		{"missing file falls to ram role", 0o644, map[string]any{"credential_path": missing}, nil, "instance ram role (auto)", nil},
		{"nothing: ram role", 0o644, nil, nil, "instance ram role (auto)", nil},
		{"ram role disabled", 0o644, map[string]any{"ram_role": "disabled", "credential_path": missing}, nil, "", []error{eni.ErrNoCredentials}},
		{"ram role forced", 0o600, map[string]any{"ram_role": "KubernetesWorkerRole", "access_key": "LTAIcfg", "access_secret": "s"}, nil,
			"instance ram role KubernetesWorkerRole (ram_role)", nil},
		{"broken env pair", 0o644, nil, map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "a"}, "", []error{eni.ErrNoCredentials}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearCredentialEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			path := mustConfig(t, nil, tc.mode, tc.fields)
			env, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			src, err := env.CredentialSource()
			if tc.wantErr != nil {
				for _, w := range tc.wantErr {
					if !errors.Is(err, w) {
						t.Fatalf("err = %v, want %v", err, w)
					}
				}
				if errors.Is(err, eni.ErrInsecureCredentials) && !strings.Contains(err.Error(), "chmod 600 "+path) {
					t.Fatalf("err = %v: does not say how to fix %s", err, path)
				}
				if strings.Contains(err.Error(), "cfg-secret") {
					t.Fatalf("err = %v shows the secret", err)
				}
				return
			}
			if want := strings.ReplaceAll(tc.want, "%s", path); err != nil || src != want {
				t.Fatalf("source = %q, %v; want %q", src, err, want)
			}
		})
	}
}

func TestLoad_CredentialWarnings(t *testing.T) {
	good := mustCredentialsFile(t, 0o600, "LTAIfile", "s", "", time.Time{})
	open := mustCredentialsFile(t, 0o644, "LTAIfile", "s", "", time.Time{})
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name   string
		mode   os.FileMode
		fields map[string]any
		want   []string // substrings, one per warning; %s is the config path
	}{
		{"clean keys", 0o600, map[string]any{"access_key": "LTAIcfg", "access_secret": "s"}, nil},
		{"clean file", 0o644, map[string]any{"credential_path": good}, nil},
		{"nothing configured", 0o644, nil, nil},
		{"keys in a readable config", 0o644, map[string]any{"access_key": "LTAIcfg", "access_secret": "s"}, []string{"chmod 600 %s"}},
		{"readable credential file", 0o600, map[string]any{"credential_path": open}, []string{"chmod 600 " + open}},
		{"missing credential file", 0o600, map[string]any{"credential_path": missing}, []string{missing + " does not exist"}},
		{"keys overridden", 0o600, map[string]any{"access_key": "LTAIcfg", "access_secret": "s", "ram_role": "R"}, []string{"ignored: ram_role"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := mustConfig(t, nil, tc.mode, tc.fields)
			env, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := env.CredentialWarnings()
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if w = strings.ReplaceAll(w, "%s", path); !strings.Contains(got[i], w) {
					t.Fatalf("warning %q does not say %q", got[i], w)
				}
			}
		})
	}
}

// Ensure the instance RAM role's STS credentials are refreshed before they
// expire: with 3-second tokens, calls spread over three lifetimes all
// succeed and the API never sees an expired token.
func TestEnv_Cloud_RAMRoleRefresh(t *testing.T) {
	clearCredentialEnv(t)
	s := mustSimCloud(t, sim.InstanceSpec{}, func(cfg *sim.Config) { cfg.STSLifetime = 3 * time.Second })
	env, err := Load(mustConfig(t, s, 0o644, nil))
	if err != nil {
		t.Fatal(err)
	}
	if src, _ := env.CredentialSource(); src != "instance ram role (auto)" {
		t.Fatalf("source %q", src)
	}
	ctx := context.Background()
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if _, err := env.Cloud().VSwitches(ctx, "vsw-sim-a"); err != nil {
			t.Fatalf("call with ram role credentials: %v", err)
		}
	}
	snap := s.cloud.Snapshot()
	if snap.STSIssued < 3 {
		t.Fatalf("%d sts credentials issued over 8s of 3s tokens: not refreshed", snap.STSIssued)
	}
	if len(snap.AuthFailures) != 0 {
		t.Fatalf("the API refused requests: %v (a token was used past its expiry)", snap.AuthFailures)
	}
}

// Ensure a credentials file that its provider rotates on disk is read again
// before the token in it expires.
func TestEnv_Cloud_CredentialFileRotation(t *testing.T) {
	clearCredentialEnv(t)
	s := mustSimCloud(t, sim.InstanceSpec{}, func(cfg *sim.Config) { cfg.STSLifetime = 3 * time.Second })
	md := eni.NewMetadata(s.metaURL, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "credentials")
	rotate := func() {
		c, err := md.RAMRoleCredentials(ctx, "")
		if err != nil {
			t.Error(err)
			return
		}
		writeCredentials(t, path, 0o600, c.AccessKeyID, c.AccessKeySecret, c.SecurityToken, c.Expiration)
	}
	rotate()
	// The addon that owns the file rotates it every second.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				rotate()
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })
	env, err := Load(mustConfig(t, s, 0o644, map[string]any{"credential_path": path, "ram_role": RAMRoleDisabled}))
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if _, err := env.Cloud().VSwitches(ctx, "vsw-sim-a"); err != nil {
			t.Fatalf("call with the rotated file: %v", err)
		}
	}
	if f := s.cloud.Snapshot().AuthFailures; len(f) != 0 {
		t.Fatalf("the API refused requests: %v", f)
	}
}

// Ensure a process with no usable credentials fails its first cloud call
// with an error that says so and what to do, wrapping ErrNoCredentials.
func TestEnv_Cloud_NoCredentials(t *testing.T) {
	clearCredentialEnv(t)
	noRole := mustSimCloud(t, sim.InstanceSpec{RAMRole: sim.NoRAMRole}, nil)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	cases := []struct {
		name   string
		fields map[string]any
		meta   string
		says   []string
	}{
		{"instance without a role", map[string]any{"credential_path": "/nonexistent/credentials"}, noRole.metaURL,
			[]string{"no cloud credentials for this process", "/nonexistent/credentials does not exist", "no instance ram role", DefaultCredentialsPath}},
		{"metadata unreachable", nil, deadURL, []string{"no cloud credentials", "no credential_path", "attach a RAM role"}},
		{"role disabled", map[string]any{"ram_role": "disabled"}, noRole.metaURL, []string{"ram_role is disabled"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fields := map[string]any{"metadata_url": tc.meta, "endpoint": noRole.endpoint}
			for k, v := range tc.fields {
				fields[k] = v
			}
			env, err := Load(mustConfig(t, nil, 0o644, fields))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err = env.Cloud().VSwitches(ctx, "vsw-sim-a")
			if !errors.Is(err, eni.ErrNoCredentials) {
				t.Fatalf("err = %v, want ErrNoCredentials", err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("err = %v\ndoes not say %q", err, s)
				}
			}
			// Fixing it needs no restart: the next call tries again.
			if _, err2 := env.Cloud().VSwitches(ctx, "vsw-sim-a"); !errors.Is(err2, eni.ErrNoCredentials) {
				t.Fatalf("second call: %v", err2)
			}
		})
	}
}

func TestEnv_Cloud_InsecureConfigKeys(t *testing.T) {
	clearCredentialEnv(t)
	s := mustSimCloud(t, sim.InstanceSpec{}, nil)
	path := mustConfig(t, s, 0o644, map[string]any{"access_key": "LTAIunused", "access_secret": "unused-secret"})
	env, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Cloud().VSwitches(context.Background(), "vsw-sim-a")
	if !errors.Is(err, eni.ErrInsecureCredentials) || !strings.Contains(err.Error(), fmt.Sprintf("chmod 600 %s", path)) {
		t.Fatalf("err = %v, want a refusal naming the fix", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	env, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Cloud().VSwitches(context.Background(), "vsw-sim-a"); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

func TestInstallCredentials(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "etc", "veni", "credentials")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	src := mustCredentialsFile(t, 0o400, "STS.first", "secret-1", "token-1", exp)
	cases := []struct {
		name        string
		prepare     func()
		wantChanged bool
		wantErr     error
		wantID      string
	}{
		{"first install", nil, true, nil, "STS.first"},
		{"unchanged", nil, false, nil, "STS.first"},
		{"rotated", func() { writeCredentials(t, src, 0o400, "STS.second", "secret-2", "token-2", exp.Add(time.Hour)) }, true, nil, "STS.second"},
		{"dst loosened is rewritten", func() { _ = os.Chmod(dst, 0o644) }, true, nil, "STS.second"},
		{"readable source refused", func() { _ = os.Chmod(src, 0o644) }, false, eni.ErrInsecureCredentials, "STS.second"},
		{"expired source refused", func() {
			writeCredentials(t, src, 0o600, "STS.old", "s", "t", time.Now().Add(-time.Minute))
		}, false, eni.ErrNoCredentials, "STS.second"},
		{"missing source", func() { _ = os.Remove(src) }, false, os.ErrNotExist, "STS.second"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare()
			}
			changed, err := InstallCredentials(src, dst)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if changed != tc.wantChanged {
				t.Fatalf("changed = %v, want %v", changed, tc.wantChanged)
			}
			got, err := eni.ReadCredentialsFile(dst) // refuses anything but 0600-like modes
			if err != nil || got.AccessKeyID != tc.wantID {
				t.Fatalf("installed %v, %v; want %s", got, err, tc.wantID)
			}
		})
	}
}

func TestSyncCredentials(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	src := mustCredentialsFile(t, 0o600, "STS.first", "s", "t", exp)
	dst := filepath.Join(t.TempDir(), "credentials")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- SyncCredentials(ctx, src, dst, 20*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	waitID := func(id string) {
		t.Helper()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if c, err := eni.ReadCredentialsFile(dst); err == nil && c.AccessKeyID == id {
				return
			}
		}
		t.Fatalf("%s never reached %s", id, dst)
	}
	waitID("STS.first")
	writeCredentials(t, src, 0o600, "STS.second", "s", "t", exp)
	waitID("STS.second")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Ensure the cold path of a plugin whose credentials file others can read
// fails with the sentinel the CNI maps and with the fix.
func TestEnv_Cloud_InsecureCredentialFile(t *testing.T) {
	clearCredentialEnv(t)
	s := mustSimCloud(t, sim.InstanceSpec{}, nil)
	file := mustCredentialsFile(t, 0o644, "LTAIunused", "unused-secret", "", time.Time{})
	env, err := Load(mustConfig(t, s, 0o644, map[string]any{"credential_path": file}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Cloud().VSwitches(context.Background(), "vsw-sim-a")
	if !errors.Is(err, eni.ErrNoCredentials) || !errors.Is(err, eni.ErrInsecureCredentials) || !strings.Contains(err.Error(), "chmod 600 "+file) {
		t.Fatalf("err = %v, want ErrNoCredentials and ErrInsecureCredentials naming the fix", err)
	}
	if w := env.CredentialWarnings(); len(w) != 1 || !strings.Contains(w[0], "chmod 600 "+file) {
		t.Fatalf("warnings %q", w)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Cloud().VSwitches(context.Background(), "vsw-sim-a"); err != nil {
		t.Fatalf("after chmod 600, without a restart: %v", err)
	}
}
