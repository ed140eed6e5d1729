package crictest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

// PauseImage is the sandbox image every containerd of this package runs:
// its config names it as sandbox_image, and StartContainerd imports it
// before it returns, so the CRI never tries to pull it.
const PauseImage = "localhost/pause:1"

// pausePkg is the pause program, built with the go tool that runs the tests.
const pausePkg = "github.com/veni-cni/veni/internal/crictest/pause"

var pauseBuild struct {
	once    sync.Once
	archive []byte
	err     error
}

// pauseArchive returns the pause image as a docker-archive, built once per
// test binary and kept in memory, so nothing outlives the run.
func pauseArchive() ([]byte, error) {
	pauseBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "veni-pause-build-")
		if err != nil {
			pauseBuild.err = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "pause")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pausePkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux") // static: the image holds nothing else
		if out, err := cmd.CombinedOutput(); err != nil {
			pauseBuild.err = fmt.Errorf("build pause: %w\n%s", err, out)
			return
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			pauseBuild.err = err
			return
		}
		pauseBuild.archive, pauseBuild.err = dockerArchive(PauseImage, runtime.GOARCH, b)
	})
	return pauseBuild.archive, pauseBuild.err
}

// imageConfig is the part of an OCI/docker image config a sandbox needs.
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// archiveManifest is one entry of a docker-archive's manifest.json.
type archiveManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// dockerArchive packs the binary pause as a one-layer image tagged ref in
// the format "docker save" writes and "ctr images import" reads: a
// layer.tar holding /pause, a config whose rootfs lists that layer's
// sha256, and a manifest.json tying the tag to both.
func dockerArchive(ref, arch string, pause []byte) ([]byte, error) {
	var layer bytes.Buffer
	if err := writeTar(&layer, map[string][]byte{"pause": pause}, map[string]int64{"pause": 0o755}); err != nil {
		return nil, fmt.Errorf("pause layer: %w", err)
	}
	diffID := sha256.Sum256(layer.Bytes())
	var cfg imageConfig
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Config.Entrypoint = []string{"/pause"}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{"sha256:" + hex.EncodeToString(diffID[:])}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgSum := sha256.Sum256(cfgJSON)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	layerName := hex.EncodeToString(diffID[:]) + "/layer.tar"
	manifest, err := json.Marshal([]archiveManifest{{Config: cfgName, RepoTags: []string{ref}, Layers: []string{layerName}}})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	files := map[string][]byte{cfgName: cfgJSON, layerName: layer.Bytes(), "manifest.json": manifest}
	if err := writeTar(&out, files, nil); err != nil {
		return nil, fmt.Errorf("pause archive: %w", err)
	}
	return out.Bytes(), nil
}

// writeTar writes files in name order (so the bytes, and the layer's
// digest, are the same every build) with mode 0644 unless modes says
// otherwise, and the directories their names imply.
var epoch = time.Unix(0, 0)

func writeTar(w *bytes.Buffer, files map[string][]byte, modes map[string]int64) error {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, name := range names {
		if dir := filepath.Dir(name); dir != "." && !dirs[dir] {
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		mode, ok := modes[name]
		if !ok {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(files[name])), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return err
		}
	}
	return tw.Close()
}
