package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/ipam"
	"github.com/veni-cni/veni/store"
)

// DefaultConfigPath is where a node keeps its veni configuration.
const DefaultConfigPath = "/etc/veni/veni.json"

// ErrConfig marks a configuration problem the operator must fix.
var ErrConfig = errors.New("invalid veni configuration")

// Env is one role's view of its node. It is cheap to build and safe for
// concurrent use. Printed, logged or marshalled it shows no secret (the
// Config redacts itself).
type Env struct {
	ConfigPath string
	Config     config.Config
	Notes      []string // unknown or ignored config fields, for the log
	Store      store.File

	configMode   fs.FileMode // of ConfigPath when it was read
	credWarnings []string

	cloudMu sync.Mutex
	cloud   eni.Client // nil until built; a failed build is tried again

	// telemetry: sees every cloud API attempt (ObserveCloud); nil when unset.
	cloudObserver atomic.Pointer[func(action, code string, took time.Duration)]
}

// Load reads the node configuration at path (DefaultConfigPath when empty).
// May return an error wrapping ErrConfig.
func Load(path string) (*Env, error) {
	if path == "" {
		path = DefaultConfigPath
	}
	raw, mode, err := readConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: %w", path, ErrConfig, err)
	}
	layer := ClusterLayerPath(path)
	switch cluster, _, err := readConfigFile(layer); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w: %w", layer, ErrConfig, err)
	default:
		if raw, err = config.MergePatch(raw, cluster); err != nil {
			return nil, fmt.Errorf("%s over %s: %w: %w", layer, path, ErrConfig, err)
		}
	}
	cfg, notes, err := config.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrConfig, err)
	}
	storePath := cfg.StorePath
	if storePath == "" {
		storePath = store.DefaultPath
	}
	return &Env{
		ConfigPath: path,
		Config:     cfg,
		Notes:      notes,
		Store:      store.File{Path: storePath},
		configMode: mode,
		credWarnings: credentialWarnings(path, mode, configView{
			AccessKey: cfg.AccessKey, AccessSecret: cfg.AccessSecret,
			CredentialPath: cfg.CredentialPath, RAMRole: cfg.RAMRole,
		}),
	}, nil
}

// ClusterLayerPath is where the daemon keeps the cluster's layers of the
// node configuration at path (the eni-config ConfigMap's eni_conf, then the
// node pool's, merged): "cluster.json" beside it. Every role merges it over
// path as an RFC 7396 merge patch, so the plugin and the daemon read one
// configuration.
func ClusterLayerPath(path string) string {
	return filepath.Join(filepath.Dir(path), "cluster.json")
}

// maxConfigFile bounds what is read from the configuration file.
const maxConfigFile = 1 << 20

// readConfigFile reads path and the mode of the file it opened.
func readConfigFile(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigFile))
	return raw, fi.Mode(), err
}

// CredentialWarnings says what an operator should fix in how this node
// holds cloud credentials: an AccessKey in a configuration file others can
// read (refused), a credential_path that is missing or others can read, an
// access_key that ram_role overrides. Computed at Load without reading any
// secret or touching the network; "veni status" shows them.
func (e *Env) CredentialWarnings() []string { return slices.Clone(e.credWarnings) }

// CredentialSource names the source of the chain (doc.go) this process
// signs with, without network I/O: "access_key in /etc/veni/veni.json",
// "credential_path /etc/veni/credentials", "environment", "instance ram
// role (auto)", ... An instance RAM role is only known to work once the
// first call was signed.
//
// May return an error wrapping eni.ErrNoCredentials.
func (e *Env) CredentialSource() (string, error) {
	_, src, err := e.credentials()
	return src, err
}

// LogNotes logs the configuration notes once, so unknown fields are visible.
func (e *Env) LogNotes(log *slog.Logger) {
	for _, n := range e.Notes {
		log.Warn("config", "file", e.ConfigPath, "note", n)
	}
}

// Metadata returns a client of the instance metadata service.
func (e *Env) Metadata() *eni.Metadata {
	return eni.NewMetadata(e.Config.MetadataURL, nil)
}

// IPAMNode is IPAMNode(facts) for a role on this node: ipam confirms
// attachments through the node's instance metadata (ipam.Node.AttachedENIs),
// which costs no API call.
func (e *Env) IPAMNode(facts store.NodeInfo) ipam.Node {
	n := IPAMNode(facts)
	n.AttachedENIs = e.Metadata().Attached
	return n
}

// Cloud returns an eni.Client that is built on its first call. Building it
// needs credentials and the region; a failure surfaces from that first call,
// never from a path that does not touch the cloud.
func (e *Env) Cloud() eni.Client {
	return lazyClient{e}
}

// buildCloud builds the client once it can: a failure (no credentials yet,
// metadata down) is returned and tried again on the next call, so a
// long-running daemon recovers when the operator fixes it.
func (e *Env) buildCloud(ctx context.Context) (eni.Client, error) {
	e.cloudMu.Lock()
	defer e.cloudMu.Unlock()
	if e.cloud != nil {
		return e.cloud, nil
	}
	c, err := e.newAlibabaClient(ctx)
	if err != nil {
		return nil, err
	}
	e.cloud = c
	return c, nil
}

func (e *Env) newAlibabaClient(ctx context.Context) (eni.Client, error) {
	cfg := e.Config
	creds, _, err := e.credentials()
	if err != nil {
		return nil, err
	}
	region := cfg.RegionID
	if region == "" {
		if region, err = e.Metadata().RegionID(ctx); err != nil {
			return nil, fmt.Errorf("region: not in %s (region_id) and metadata failed: %w", e.ConfigPath, err)
		}
	}
	// Only the overrides: the client starts from eni.DefaultRateLimits.
	limits := make(map[string]eni.RateLimit, len(cfg.RateLimit))
	for action, perMinute := range cfg.RateLimit {
		limits[action] = eni.PerMinute(perMinute)
	}
	return eni.NewAlibabaClient(eni.AlibabaOptions{
		RegionID:           region,
		Endpoint:           cfg.Endpoint,
		Scheme:             cfg.Scheme,
		CredentialProvider: creds,
		RateLimits:         limits,
		Observe:            e.observeCloud,
	})
}

// ObserveCloud makes fn see every attempt of the cloud client this Env
// builds (eni.AlibabaOptions.Observe: action, result code, duration), from
// now on, whether or not the client is built yet. The daemon sets its
// metrics exporter here; the CNI plugin sets nothing and pays one atomic
// load per attempt.
func (e *Env) ObserveCloud(fn func(action, code string, took time.Duration)) {
	if fn == nil {
		e.cloudObserver.Store(nil)
		return
	}
	e.cloudObserver.Store(&fn)
}

func (e *Env) observeCloud(action, code string, took time.Duration) {
	if fn := e.cloudObserver.Load(); fn != nil {
		(*fn)(action, code, took)
	}
}
