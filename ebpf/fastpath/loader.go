//go:build linux

package fastpath

// The compiler and its flags are pinned so that `make generate` on Debian 12
// reproduces the committed objects byte for byte (ebpf/check-generated.sh).
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux -type endpoint -type lpm_key -type lpm6_key -type in6_key -type flow_key -type flow6_key -type counter -type hook -type host_reason -type host_entry fastpath fastpath.c -- -I../headers -mcpu=v3 -Wall -Werror
