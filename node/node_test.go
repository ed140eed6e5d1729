package node

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/store"
)

// mustSimNode runs the simulated cloud's API and metadata on loopback for
// one instance and writes a node config pointing at them.
func mustSimNode(tb testing.TB) (configPath string, metadata *httptest.Server, inst sim.Instance) {
	tb.Helper()
	cfg := sim.DefaultConfig()
	cfg.Credentials = map[string]string{"LTAItest": "secret"}
	var id string
	cfg.IdentifyCaller = func(*http.Request) (string, bool) { return id, true }
	cloud, err := sim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cloud.Close() })
	inst, err = cloud.AddInstance(sim.InstanceSpec{Hostname: "n1", Type: "ecs.g7.large"})
	if err != nil {
		tb.Fatal(err)
	}
	id = inst.ID
	api := httptest.NewServer(cloud.APIHandler())
	tb.Cleanup(api.Close)
	metadata = httptest.NewServer(cloud.MetadataHandler())
	tb.Cleanup(metadata.Close)
	dir := tb.TempDir()
	configPath = filepath.Join(dir, "veni.json")
	conf := fmt.Sprintf(`{"endpoint":%q,"scheme":"http","metadata_url":%q,"access_key":"LTAItest","access_secret":"secret",
		"store_path":%q,"max_pool_size":5,"some_future_field":1}`,
		strings.TrimPrefix(api.URL, "http://"), metadata.URL, filepath.Join(dir, "veni.db"))
	if err := os.WriteFile(configPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	return configPath, metadata, inst
}

func TestLoad_ReportsUnknownFields(t *testing.T) {
	path, _, _ := mustSimNode(t)
	env, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Notes) == 0 || !strings.Contains(strings.Join(env.Notes, " "), "some_future_field") {
		t.Fatalf("unknown field not reported: %q", env.Notes)
	}
}

func TestLoad_Errors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"max_pool_size": "many"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.json"), bad} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("Load(%s) = %v, want an error naming the file", path, err)
		}
	}
}

// Ensure Facts discovers the node once through metadata and the OpenAPI and
// then answers from the store, with no metadata service at all.
func TestEnv_Facts_CachedInStore(t *testing.T) {
	path, metadata, inst := mustSimNode(t)
	env, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	facts, err := env.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := store.NodeInfo{InstanceID: inst.ID, InstanceType: "ecs.g7.large", ZoneID: inst.ZoneID, PrimaryENIID: inst.PrimaryENIID, VSwitchID: inst.VSwitchID, ENIs: 3, IPv4PerENI: 6}
	if facts.InstanceID != want.InstanceID || facts.InstanceType != want.InstanceType || facts.ZoneID != want.ZoneID ||
		facts.PrimaryENIID != want.PrimaryENIID || facts.VSwitchID != want.VSwitchID || facts.ENIs != want.ENIs || facts.IPv4PerENI != want.IPv4PerENI {
		t.Fatalf("facts %+v, want %+v", facts, want)
	}
	if len(facts.SecurityGroupIDs) == 0 {
		t.Fatalf("security groups of the primary ENI not learned: %+v", facts)
	}
	metadata.Close()
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cached, err := again.Facts(ctx)
	if err != nil {
		t.Fatalf("facts with metadata down: %v", err)
	}
	if cached.InstanceID != facts.InstanceID {
		t.Fatalf("cached facts %+v", cached)
	}
}

// Ensure the cluster's layer (cluster.json beside the node's file, written
// by the daemon from the ConfigMaps) is merged over the node's file, so the
// plugin reads what the daemon applies, and a broken layer names its file.
func TestLoad_ClusterLayer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "veni.json")
	if err := os.WriteFile(path, []byte(`{"max_pool_size": 5, "min_pool_size": 1, "store_path": "/tmp/x.db", "vswitches": {"z": ["vsw-a"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ClusterLayerPath(path), []byte(`{"max_pool_size": 9, "min_pool_size": null, "vswitches": {"y": ["vsw-b"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c := env.Config
	if c.MaxPoolSize != 9 || c.MinPoolSize != 0 || len(c.VSwitches["z"]) != 1 || len(c.VSwitches["y"]) != 1 || env.Store.Path != "/tmp/x.db" {
		t.Fatalf("merged config %+v", c)
	}
	if err := os.WriteFile(ClusterLayerPath(path), []byte(`[1]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "cluster.json") {
		t.Fatalf("broken layer: %v", err)
	}
}

// Ensure a restarting daemon keeps cached facts while metadata names the
// same instance and type and they are fresh, and discovers afresh when the
// type changed, the facts are too old, or they lack the primary ENI's
// security groups that a configuration naming none needs.
func TestEnv_Restart(t *testing.T) {
	path, _, _ := mustSimNode(t)
	ctx, now := context.Background(), time.Now()
	env, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	put := func(info store.NodeInfo) {
		t.Helper()
		if err := env.Store.Update(func(tx *store.WriteTx) error { return tx.PutNode(info) }); err != nil {
			t.Fatal(err)
		}
	}
	facts, cached, err := env.Restart(ctx, FactsMaxAge, now)
	if err != nil || cached || len(facts.SecurityGroupIDs) == 0 {
		t.Fatalf("first start: cached %v, %+v, %v", cached, facts, err)
	}
	put(facts)
	if _, cached, err := env.Restart(ctx, FactsMaxAge, now); err != nil || !cached {
		t.Fatalf("same instance: cached %v, %v", cached, err)
	}
	if _, cached, _ := env.Restart(ctx, FactsMaxAge, now.Add(FactsMaxAge+time.Minute)); cached {
		t.Error("facts older than FactsMaxAge kept")
	}
	changed := facts
	changed.InstanceType = "ecs.g7.xlarge"
	put(changed)
	if got, cached, err := env.Restart(ctx, FactsMaxAge, now); err != nil || cached || got.InstanceType != "ecs.g7.large" {
		t.Fatalf("after a type change: cached %v, type %s, %v", cached, got.InstanceType, err)
	}

	// eni_conf naming security groups: the primary ENI is not described.
	env.Config.SecurityGroups = []string{"sg-conf"}
	noSGs, _, err := env.Restart(ctx, 0, now)
	if err != nil || len(noSGs.SecurityGroupIDs) != 0 {
		t.Fatalf("with security groups configured: %+v, %v", noSGs, err)
	}
	put(noSGs)
	env.Config.SecurityGroups = nil
	if got, cached, err := env.Restart(ctx, FactsMaxAge, now); err != nil || cached || len(got.SecurityGroupIDs) == 0 {
		t.Fatalf("configuration dropped its security groups: cached %v, %+v, %v", cached, got, err)
	}
}
