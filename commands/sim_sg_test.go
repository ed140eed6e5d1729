package commands

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// Ensure veni sim sg refuses bad flags before it looks for a sim, and
// looks for one otherwise.
func TestSimSG_Flags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no-sim")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"create", "--type", "basic"}, `--type "basic"`},
		{[]string{"authorize", "sg-x", "--port", "80/80"}, "give one peer"},
		{[]string{"revoke", "sg-x", "--cidr", "10.0.0.0/8", "--group", "sg-y"}, "give one peer"},
		{[]string{"set-eni", "eni-x"}, "requires at least 2 arg(s)"},
		{[]string{"authorize", "sg-x", "--port", "80/80", "--cidr", "10.0.0.0/8"}, "no sim running"},
	}
	for _, tc := range cases {
		g := &simGlobalOptions{dir: dir}
		cmd := newSimSGCommand(g)
		cmd.SetArgs(tc.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sim sg %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
