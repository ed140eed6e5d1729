package fastpath

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// Programs are pinned beside the maps so that the short-lived CNI process,
// which opens the fast path on every ADD and DEL, finds them loaded: opening
// pins costs a few system calls, loading means parsing the object and
// running the verifier on every program (milliseconds per ADD). The
// directory name carries a digest of the embedded object, so after an
// upgrade the new binary loads and pins its own programs instead of
// attaching an older build's.
var progsDirName = func() string {
	sum := sha256.Sum256(_FastpathBytes)
	return "progs-" + hex.EncodeToString(sum[:6])
}()

func (d *Datapath) progPath(name string) string {
	return filepath.Join(d.pinDir, progsDirName, name)
}

// pinnedPrograms and pinnedMaps name the objects openPinned needs, in the
// generated structs' order.
func (d *Datapath) pinnedPrograms() map[string]**ebpf.Program {
	return map[string]**ebpf.Program{
		"from_eni": &d.objs.FromEni,
		"from_pod": &d.objs.FromPod,
		"to_pod":   &d.objs.ToPod,
	}
}

func (d *Datapath) pinnedMaps() map[string]**ebpf.Map {
	return map[string]**ebpf.Map{
		"veni_counters":  &d.objs.VeniCounters,
		"veni_endpoints": &d.objs.VeniEndpoints,
		"veni_pod_flows": &d.objs.VeniPodFlows,
		"veni_hoststack": &d.objs.VeniHoststack,

		"veni_counters6":  &d.objs.VeniCounters6,
		"veni_endpoints6": &d.objs.VeniEndpoints6,
		"veni_pod_flows6": &d.objs.VeniPodFlows6,
		"veni_hoststack6": &d.objs.VeniHoststack6,
	}
}

// openPinned opens every program and map from their pins. It reports false
// (and holds nothing) when one is missing: the caller then loads them.
func (d *Datapath) openPinned() (bool, error) {
	var err error
	for name, p := range d.pinnedPrograms() {
		if *p, err = ebpf.LoadPinnedProgram(d.progPath(name), nil); err != nil {
			break
		}
	}
	if err == nil {
		for name, m := range d.pinnedMaps() {
			if *m, err = ebpf.LoadPinnedMap(filepath.Join(d.pinDir, name), nil); err != nil {
				break
			}
		}
	}
	if err == nil {
		return true, nil
	}
	d.objs.Close()
	d.objs = fastpathObjects{}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("open pinned fast path in %s: %w", d.pinDir, err)
}

// pinPrograms pins freshly loaded programs for the next openPinned.
func (d *Datapath) pinPrograms() error {
	if err := os.MkdirAll(filepath.Join(d.pinDir, progsDirName), 0o700); err != nil {
		return fmt.Errorf("create program pin dir: %w", err)
	}
	for name, p := range d.pinnedPrograms() {
		path := d.progPath(name)
		_ = os.Remove(path) // a stale pin of a crashed Open
		if err := (*p).Pin(path); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	return nil
}

// Loaded reports whether pinDir holds this build's pinned programs: proof
// that the kernel loaded them once, so callers on a hot path (every CNI ADD)
// may skip the Supported probe.
func Loaded(pinDir string) bool {
	_, err := os.Stat(filepath.Join(pinDir, progsDirName, "from_pod"))
	return err == nil
}
