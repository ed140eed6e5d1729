//go:build !linux

package main

import "github.com/spf13/cobra"

func newPolicyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "policy",
		Short: "Install or remove NetworkPolicy enforcement (linux only)",
		RunE:  func(*cobra.Command, []string) error { return errNotLinux },
	}
}
