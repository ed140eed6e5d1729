package commands

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestDispatchArgs(t *testing.T) {
	cases := []struct {
		name string
		argv []string
		want []string
	}{
		{"plain", []string{"/usr/bin/veni", "version"}, []string{"version"}},
		{"link", []string{"/usr/local/bin/veni-daemon", "--config", "x"}, []string{"daemon", "--config", "x"}},
		{"bare link prefix", []string{"veni-"}, nil},
		{"empty", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := dispatchArgs(tc.argv)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("dispatchArgs(%q) = %q, want %q", tc.argv, got, tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "veni ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("unexpected version output %q", out.String())
	}
}
