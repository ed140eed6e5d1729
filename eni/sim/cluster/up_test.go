package cluster

import (
	"bytes"
	"strings"
	"testing"
)

// Ensure start-up progress makes a line when a phase starts and about
// every tenth of the way, not one per poll.
func TestProgressShower_Show(t *testing.T) {
	var s progressShower
	var out bytes.Buffer
	for done := 0; done <= 100; done++ {
		s.show(&out, Progress{Phase: "nodes", Done: done, Total: 100})
		s.show(&out, Progress{Phase: "nodes", Done: done, Total: 100}) // polled twice
	}
	for done := 0; done <= 2; done++ {
		s.show(&out, Progress{Phase: "daemons", Done: done, Total: 2})
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 11+3 {
		t.Fatalf("%d lines, want 14:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"nodes: 0/100", "nodes: 50/100", "nodes: 100/100", "daemons: 0/2", "daemons: 2/2"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("no line %q in\n%s", want, out.String())
		}
	}
}
