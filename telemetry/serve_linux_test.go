package telemetry

import (
	"net"
	"slices"
	"strconv"
	"testing"

	"github.com/veni-cni/veni/internal/testutil"
)

// Ensure the default serves on a socket and opens no TCP port (a listener
// probe of the process's sockets), and a configured TCP address opens
// exactly that one.
func TestListen_NoTCPPortByDefault(t *testing.T) {
	db := mustStore(t, 0)
	e, _ := newTestExporter(t, db)
	before := testutil.TCPListeners(t)
	l, err := Listen(Address("", db.Path))
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, e, l)
	if during := testutil.TCPListeners(t); !slices.Equal(before, during) {
		t.Errorf("serving on the default opened TCP listeners: before %q, during %q", before, during)
	}
	stop()

	tl, err := Listen(Address("127.0.0.1:0", db.Path))
	if err != nil {
		t.Fatal(err)
	}
	stop = serve(t, e, tl)
	defer stop()
	port := strconv.Itoa(tl.Addr().(*net.TCPAddr).Port)
	if during := testutil.TCPListeners(t); !slices.Contains(during, "0100007F:"+port) || len(during) != len(before)+1 {
		t.Errorf("configured 127.0.0.1:0: listeners %q, want %q plus 127.0.0.1:%s", during, before, port)
	}
}
