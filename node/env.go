package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/store"
)

// DefaultConfigPath is where a node keeps its veni configuration.
const DefaultConfigPath = "/etc/veni/veni.json"

// ErrConfig marks a configuration problem the operator must fix.
var ErrConfig = errors.New("invalid veni configuration")

// Env is one role's view of its node. It is cheap to build and safe for
// concurrent use.
type Env struct {
	ConfigPath string
	Config     config.Config
	Notes      []string // unknown or ignored config fields, for the log
	Store      store.File

	cloudOnce sync.Once
	cloud     eni.Client
	cloudErr  error
}

// Load reads the node configuration at path (DefaultConfigPath when empty).
// May return an error wrapping ErrConfig.
func Load(path string) (*Env, error) {
	if path == "" {
		path = DefaultConfigPath
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: %w", path, ErrConfig, err)
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
	}, nil
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

// Cloud returns an eni.Client that is built on its first call. Building it
// needs credentials and the region; a failure surfaces from that first call,
// never from a path that does not touch the cloud.
func (e *Env) Cloud() eni.Client {
	return lazyClient{e}
}

func (e *Env) buildCloud(ctx context.Context) (eni.Client, error) {
	e.cloudOnce.Do(func() {
		e.cloud, e.cloudErr = e.newAlibabaClient(ctx)
	})
	return e.cloud, e.cloudErr
}

func (e *Env) newAlibabaClient(ctx context.Context) (eni.Client, error) {
	cfg := e.Config
	creds := eni.Credentials{AccessKeyID: cfg.AccessKey, AccessKeySecret: cfg.AccessSecret}
	if creds.AccessKeyID == "" {
		var err error
		if creds, err = eni.LoadCredentials(cfg.CredentialPath); err != nil {
			return nil, err
		}
	}
	region := cfg.RegionID
	if region == "" {
		var err error
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
		RegionID:    region,
		Endpoint:    cfg.Endpoint,
		Scheme:      cfg.Scheme,
		Credentials: creds,
		RateLimits:  limits,
	})
}
