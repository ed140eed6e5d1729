package enforce

// The test build of policy.c (never shipped: it is embedded only in this
// package's test binary): every map lookup of a check is counted in
// veni_pol_probe, and pol_to_pod takes "the packet is the node's own" from
// the mark VENI_POL_TEST_HOST_MARK, because bpf_prog_test_run gives every
// packet a socket. Its maps are pinned by name like the real object's, so
// loaded in an Enforcer's pin dir it decides with the Enforcer's tables.
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux policyTest policy.c -- -I../headers -mcpu=v3 -Wall -Werror -DVENI_POL_TEST
