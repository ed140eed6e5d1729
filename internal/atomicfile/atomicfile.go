// Package atomicfile replaces files whole: whoever reads one (a container
// runtime its conflist, the plugin its configuration, the plugin on the
// host the credentials the DaemonSet put there) sees the old content or
// the new, never a part of either. It owns that one mechanism and knows
// nothing of what the files mean.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write puts data at path: into a temporary file beside it that has mode
// before any byte is written (a file meant to hold a secret is never
// readable by others, whatever the umask), synced, then renamed over
// path. The directory is made (0755) when missing. On failure path is
// unchanged and no temporary file is left.
func Write(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
