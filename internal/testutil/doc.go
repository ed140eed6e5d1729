// Package testutil holds helpers shared by veni's tests: throwaway network
// namespaces and skip rules for tests that need root or a recent kernel.
// Nothing outside _test.go files may import it.
package testutil
