package telemetry

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Ensure README.md documents every metric the exporter registers, and no
// metric it does not.
func TestREADME_ListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newTestExporter(t, mustStore(t, 0))
	var buf bytes.Buffer
	if _, err := e.reg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, l := range strings.Split(buf.String(), "\n") {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			registered[name] = true
		}
	}
	if len(registered) < 40 {
		t.Fatalf("only %d families registered?", len(registered))
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(veni_[a-z0-9_]+)").FindAllSubmatch(readme, -1) {
		documented[string(m[1])] = true
	}
	for name := range registered {
		if !documented[name] {
			t.Errorf("README.md does not document %s", name)
		}
	}
	for name := range documented {
		if !registered[name] {
			t.Errorf("README.md documents %s, which is not registered", name)
		}
	}
}
