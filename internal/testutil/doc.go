// Package testutil holds helpers shared by veni's tests: throwaway network
// namespaces and skip rules for tests that need root, a recent kernel, a
// kernel feature or a command. Every such skip goes through Skipf, so that
// CI (VENI_REQUIRE_PRIVILEGED=1) turns it into a failure; and the checks
// that keep packages the CNI plugin links cheap at init (NoInitWork,
// NoDeps). Nothing outside _test.go files may import it.
package testutil
