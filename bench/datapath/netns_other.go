//go:build !linux

package main

import (
	"context"
	"errors"
	"os/exec"
)

// errNotLinux: network namespaces, and so this benchmark, are Linux's.
var errNotLinux = errors.New("bench-datapath needs linux (network namespaces)")

func startIn(string, int, *exec.Cmd) error                              { return errNotLinux }
func killGroup(int) error                                               { return errNotLinux }
func forwarded(string) (uint64, error)                                  { return 0, errNotLinux }
func waitListening(context.Context, string, int, <-chan struct{}) error { return errNotLinux }
