package commands

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"
)

// Set at link time by the Makefile (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print veni's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(cmd.OutOrStdout())
		},
	}
}

func runVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "veni %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
