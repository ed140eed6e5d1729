package testutil

import (
	"net"
	"slices"
	"strconv"
	"testing"
)

func TestTCPListeners_SeesOwnListener(t *testing.T) {
	before := TCPListeners(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	during := TCPListeners(t)
	l.Close()
	after := TCPListeners(t)
	if !slices.Contains(during, "0100007F:"+port) {
		t.Errorf("listener on port %s not found in %q", port, during)
	}
	if !slices.Equal(before, after) {
		t.Errorf("before %q, after close %q", before, after)
	}
}
