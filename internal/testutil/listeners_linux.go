package testutil

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TCPListeners returns the local addresses ("hex-ip:port") of the TCP
// sockets in LISTEN state that this process holds open: a probe for
// "nothing opened a port". It reads /proc/self/fd and /proc/self/net/tcp
// and tcp6, so it sees sockets of the process's network namespace only.
func TCPListeners(tb testing.TB) []string {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("tcp listeners: %v", err)
	}
	own := make(map[string]bool)
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			own[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if os.IsNotExist(err) {
			continue // no IPv6
		}
		if err != nil {
			tb.Fatalf("tcp listeners: %v", err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !own[fields[9]] {
				continue
			}
			ip, portHex, _ := strings.Cut(fields[1], ":")
			port, _ := strconv.ParseUint(portHex, 16, 16)
			out = append(out, ip+":"+strconv.FormatUint(port, 10))
		}
		f.Close()
		if err := sc.Err(); err != nil {
			tb.Fatalf("tcp listeners: %s: %v", table, err)
		}
	}
	slices.Sort(out)
	return out
}
