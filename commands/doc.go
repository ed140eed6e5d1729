// Package commands holds veni's cobra command tree: one file per command,
// each with a newXCommand constructor, an xOptions struct whose AddFlags
// registers its flags, and a RunE that validates arguments and then calls
// runX, which writes to the command's output stream.
//
// Commands own argument parsing and presentation only. They must not hold
// state between invocations: everything a role shares with another role
// goes through the store (package store) or, for the simulator, the sim
// state directory.
package commands
