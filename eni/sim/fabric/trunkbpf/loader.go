//go:build linux

package trunkbpf

// The compiler and its flags are pinned so that `make generate` on Debian 12
// reproduces the committed objects byte for byte (ebpf/check-generated.sh
// checks this package too).
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -tags linux -type member -type addr -type stat trunk trunk.c -- -I. -mcpu=v3 -Wall -Werror
