package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Ensure a file is replaced whole with the mode asked, whatever the umask,
// in a directory made for it.
func TestWrite(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "etc", "veni.json")
	for _, tc := range []struct {
		data string
		mode os.FileMode
	}{{"first", 0o644}, {"second, longer than the first", 0o600}} {
		if err := Write(path, []byte(tc.data), tc.mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != tc.data {
			t.Fatalf("read %q, %v; want %q", got, err, tc.data)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != tc.mode {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), tc.mode)
		}
	}
	onlyFile(t, filepath.Dir(path), "veni.json")
}

// Ensure a failed replace leaves the old file and no temporary one.
func TestWrite_FailureLeavesOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf")
	if err := os.Mkdir(path, 0o755); err != nil { // rename over a directory fails
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o644); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	onlyFile(t, dir, "conf")
}

func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want only %s", dir, names, name)
	}
}
