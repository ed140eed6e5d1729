//go:build linux

package enforce

// The compiler and its flags are pinned so that `make generate` on Debian 12
// reproduces the committed objects byte for byte (ebpf/check-generated.sh).
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux -type pol_key -type pol_value -type ct_key -type ct_value -type pol_stats -type pol_drop -type pol_kind -type pol_flag -type pol_reason -type pol_counter -type pol_dir -type pol_hook -type pol_svc_key -type ct6_key -type pol_drop6 -type pol_svc6_key -type pol_in6 policy policy.c -- -I../headers -mcpu=v3 -Wall -Werror
