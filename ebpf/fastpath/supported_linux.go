package fastpath

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Supported probes whether this kernel offers what the fast path needs and
// returns nil, or an error wrapping ErrNotSupported that names everything
// missing (so the caller can pick the plain datapath and say why). It
// changes nothing on the system.
func Supported() error {
	var missing []string
	probe := func(what string, err error) {
		if err == nil {
			return
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			missing = append(missing, what)
			return
		}
		missing = append(missing, fmt.Sprintf("%s (probe failed: %v)", what, err))
	}
	if err := features.HaveProgramType(ebpf.SchedCLS); err != nil {
		// Nothing else can be probed without tc programs.
		return fmt.Errorf("%w: tc bpf programs: %v", ErrNotSupported, err)
	}
	probe("LPM trie maps", features.HaveMapType(ebpf.LPMTrie))
	probe("LRU hash maps", features.HaveMapType(ebpf.LRUHash))
	probe("per-CPU array maps", features.HaveMapType(ebpf.PerCPUArray))
	probe("bpf_redirect_peer (Linux 5.10)", features.HaveProgramHelper(ebpf.SchedCLS, asm.FnRedirectPeer))
	probe("bpf_redirect_neigh (Linux 5.10)", features.HaveProgramHelper(ebpf.SchedCLS, asm.FnRedirectNeigh))
	probe("bpf_fib_lookup", features.HaveProgramHelper(ebpf.SchedCLS, asm.FnFibLookup))
	probe("tcx links (Linux 6.6)", haveTCX())
	probe("bpf_fib_lookup with BPF_FIB_LOOKUP_TBID (Linux 6.8)", haveFIBTableLookup())
	if len(missing) > 0 {
		return fmt.Errorf("%w: kernel lacks %s", ErrNotSupported, strings.Join(missing, ", "))
	}
	return nil
}

func trivialTC() (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
}

// haveTCX attaches to an interface that cannot exist: a kernel with TCX
// answers ENODEV, one without it makes cilium/ebpf report ErrNotSupported.
func haveTCX() error {
	prog, err := trivialTC()
	if err != nil {
		return err
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: math.MaxInt32,
		Program:   prog,
		Attach:    ebpf.AttachTCXIngress,
	})
	switch {
	case err == nil:
		l.Close()
		return errors.New("attach to a missing interface succeeded")
	case errors.Is(err, unix.ENODEV):
		return nil
	default:
		return err
	}
}

// haveFIBTableLookup runs a program that calls bpf_fib_lookup with the
// flags from_pod uses. The helper rejects unknown flags with -EINVAL before
// looking at anything else, so the test run needs no routes.
func haveFIBTableLookup() error {
	const (
		paramsSize = 64 // sizeof(struct bpf_fib_lookup)
		off        = -paramsSize
		flags      = 1 | 4 | 8 // DIRECT | SKIP_NEIGH | TBID
	)
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	// StoreImm has no 64-bit form.
	for i := int16(0); i < paramsSize; i += 4 {
		insns = append(insns, asm.StoreImm(asm.RFP, off+i, 0, asm.Word))
	}
	insns = append(insns,
		asm.StoreImm(asm.RFP, off, unix.AF_INET, asm.Byte),          // family
		asm.StoreImm(asm.RFP, off+8, 1, asm.Word),                   // ifindex: lo
		asm.StoreImm(asm.RFP, off+48, unix.RT_TABLE_MAIN, asm.Word), // tbid
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, off),
		asm.Mov.Imm(asm.R3, paramsSize),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnFibLookup.Call(),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: insns,
	})
	if err != nil {
		return fmt.Errorf("load probe: %w", err)
	}
	defer prog.Close()
	ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14+20)})
	if err != nil {
		return fmt.Errorf("run probe: %w", err)
	}
	if int32(ret) == -int32(unix.EINVAL) {
		return ebpf.ErrNotSupported
	}
	return nil
}
