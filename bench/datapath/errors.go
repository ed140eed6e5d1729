package main

import "errors"

var (
	// errNoResult means a tool ran but its output held no figure (a
	// changed output format, or a run too short to report one).
	errNoResult = errors.New("no result in tool output")
	// errNotReady means a server started inside a namespace never said it
	// was listening.
	errNotReady = errors.New("server not ready")
	// errUsage means the flags do not describe a measurement.
	errUsage = errors.New("bad usage")
)
