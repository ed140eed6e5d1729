//go:build !veniprof

package commands

// profileCNI is a no-op in veni's build. A binary built with
// "-tags veniprof" (cniprof_veniprof.go) profiles each plugin run instead:
// the benchmark's way to see where an ADD's time goes, at no cost here.
func profileCNI() func() { return func() {} }
