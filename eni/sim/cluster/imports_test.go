package cluster

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Ensure the simulator does not depend on the code it tests: it may drive
// veni only through its binary and libcni.
func TestImports_NotVeniInternals(t *testing.T) {
	const module = "github.com/veni-cni/veni/"
	forbidden := []string{"ipam", "store", "node", "config", "netplumb", "daemon", "ebpf", "audit", "commands", "eni"}
	allowed := []string{"eni/sim"} // the cloud model, its fabric and pods: the simulator itself
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			rel, ok := strings.CutPrefix(path, module)
			if !ok {
				continue
			}
			if under(rel, allowed) {
				continue
			}
			if under(rel, forbidden) {
				t.Errorf("%s imports %s: the simulator must drive veni through its binary, not its packages", f, path)
			}
		}
	}
}

// under reports whether pkg is one of dirs or inside one.
func under(pkg string, dirs []string) bool {
	for _, d := range dirs {
		if pkg == d || strings.HasPrefix(pkg, d+"/") {
			return true
		}
	}
	return false
}
