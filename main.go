// Command veni is one static binary that plays every node-side role of the
// veni CNI: CNI plugin, node daemon, IPAM store tool, policy enforcer,
// troubleshooting tool and simulated VPC.
//
// It dispatches busybox-style on its program name: invoked as "loopback"
// (a link in the CNI bin dir) it is the CNI loopback plugin; invoked
// through a link named "veni-X" it acts as "veni X"; otherwise the first
// argument picks the subcommand.
package main

import (
	"os"
	"path/filepath"

	"github.com/veni-cni/veni/commands"
)

func main() {
	run := commands.Execute
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == commands.LoopbackName {
		run = func([]string) error { return commands.RunLoopback() }
	}
	if err := run(os.Args); err != nil {
		os.Exit(1)
	}
}
