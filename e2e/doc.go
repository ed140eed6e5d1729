// Package e2e holds end-to-end tests that drive the built veni binary
// against a simulated VPC ("veni sim"). They need root and skip without
// it; each test runs its own sim under a unique name and state directory,
// so it never touches a user's sim, and tears it down even on failure.
//
// Set VENI_BIN to test a prebuilt binary (make test passes bin/veni);
// otherwise the tests build one.
package e2e
