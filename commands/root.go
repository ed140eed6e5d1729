package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// NewRootCommand returns the "veni" command with every subcommand attached.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "veni",
		Short:         "Kubernetes CNI for Alibaba Cloud VPC: pods get real VPC addresses from ENIs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCommand(),
		newENICommand(),
		newSimCommand(),
		newDaemonCommand(),
		newIPAMCommand(),
		newInstallCommand(),
		newStatusCommand(),
		newCredentialsCommand(),
		newCleanupCommand(),
		newPolicyCommand(),
	)
	return root
}

// Execute runs the command named by argv. A program name of the form
// "veni-X" (a symlink such as veni-daemon) is treated as "veni X".
//
// With CNI_COMMAND set and no arguments, veni is a CNI plugin: the runtime
// execs /opt/cni/bin/veni that way, and the CNI protocol (not cobra) then
// owns stdin, stdout and the exit code.
func Execute(argv []string) error {
	if os.Getenv("CNI_COMMAND") != "" && len(argv) <= 1 {
		return runCNI()
	}
	root := NewRootCommand()
	root.SetArgs(dispatchArgs(argv))
	err := root.Execute()
	if err != nil {
		fmt.Fprintf(os.Stderr, "veni: %v\n", err)
	}
	return err
}

// dispatchArgs turns argv into cobra arguments, honouring busybox-style
// invocation through a "veni-X" link.
func dispatchArgs(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	base := filepath.Base(argv[0])
	if role, ok := strings.CutPrefix(base, "veni-"); ok && role != "" {
		return append([]string{role}, argv[1:]...)
	}
	return argv[1:]
}

// writeJSON prints v as indented JSON, the -o json of every command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
