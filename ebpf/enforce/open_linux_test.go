package enforce

import (
	"testing"

	"github.com/veni-cni/veni/ebpf/fastpath"
)

func TestOpen_LoadsBeside(t *testing.T) {
	dir := mustPinDir(t)
	e := mustOpen(t, Options{PinDir: dir})
	_ = e
	d, err := fastpath.Open(fastpath.Options{PinDir: dir})
	if err != nil {
		t.Fatalf("fastpath open: %+v", err)
	}
	d.Close()
}
