//go:build linux

package vlan

// The compiler and its flags are pinned so that `make generate` on Debian 12
// reproduces the committed objects byte for byte (ebpf/check-generated.sh).
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux vlan vlan.c -- -I../headers -mcpu=v3 -Wall -Werror
