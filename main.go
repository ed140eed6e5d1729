// Command veni is one static binary that plays every node-side role of the
// veni CNI: CNI plugin, node daemon, IPAM store tool, policy enforcer,
// troubleshooting tool and simulated VPC.
//
// It dispatches busybox-style: invoked through a link named "veni-X" it acts
// as "veni X"; otherwise the first argument picks the subcommand.
package main

import (
	"os"

	"github.com/veni-cni/veni/commands"
)

func main() {
	if err := commands.Execute(os.Args); err != nil {
		os.Exit(1)
	}
}
