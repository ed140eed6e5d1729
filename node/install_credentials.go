package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/internal/atomicfile"
)

// InstallCredentials puts the credentials file src (in a DaemonSet, the
// mounted Secret holding Terway's addon token) at dst, the host path that
// both the CNI plugin on the host and the daemon read (credential_path,
// DefaultCredentialsPath). src is checked as the chain would read it
// (private, valid JSON, not expired); dst is written as JSON with the four
// fields, mode 0600, through a rename so a reader never sees half of it,
// and only when its content changes. It reports whether dst changed.
//
// May return an error wrapping eni.ErrInsecureCredentials,
// eni.ErrNoCredentials (the token in src expired) or fs.ErrNotExist (no
// src); dst is then left as it was.
func InstallCredentials(src, dst string) (bool, error) {
	c, err := eni.ReadCredentialsFile(src)
	if err != nil {
		return false, err
	}
	body := credentialsJSON{AccessKeyID: c.AccessKeyID, AccessKeySecret: c.AccessKeySecret, SecurityToken: c.SecurityToken}
	if !c.Expiration.IsZero() {
		body.Expiration = c.Expiration.UTC().Format(time.RFC3339)
	}
	data, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		return false, fmt.Errorf("install credentials: %w", err)
	}
	data = append(data, '\n')
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(dst); err == nil && fi.Mode().Perm() == 0o600 {
			return false, nil
		}
	}
	if err := writePrivate(dst, data); err != nil {
		return false, fmt.Errorf("install credentials at %s: %w", dst, err)
	}
	return true, nil
}

// credentialsJSON is the file InstallCredentials writes: what
// eni.ReadCredentialsFile reads. (eni.Credentials marshals redacted.)
type credentialsJSON struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	SecurityToken   string `json:"SecurityToken,omitempty"`
	Expiration      string `json:"Expiration,omitempty"`
}

// writePrivate writes data to path with mode 0600 through a rename.
func writePrivate(path string, data []byte) error { return atomicfile.Write(path, data, 0o600) }

// SyncCredentials runs InstallCredentials at once and then every interval
// until ctx ends, so a Secret that its owner rotates reaches the host
// before the token in it expires. Failures are logged (never the
// credentials) and tried again; the current dst stays meanwhile.
func SyncCredentials(ctx context.Context, src, dst string, every time.Duration, log *slog.Logger) error {
	if every <= 0 {
		return fmt.Errorf("sync credentials: interval %s: must be positive", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		changed, err := InstallCredentials(src, dst)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			log.Warn("credentials source missing; keeping what is installed", "src", src, "dst", dst)
		case err != nil:
			log.Error("install credentials", "src", src, "dst", dst, "err", err)
		case changed:
			log.Info("credentials installed", "src", src, "dst", dst)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
