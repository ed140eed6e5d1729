package fastpath

// EnsurePinDir makes dir exist on bpffs, mounting bpffs on /sys/fs/bpf when
// dir lies below it and nothing is mounted there yet, as Open does. Other
// packages that pin beside the fast path (ebpf/enforce) use it so that a
// node's pins follow one scheme. May return an error wrapping ErrNotBPFFS.
func EnsurePinDir(dir string) error { return ensureBPFFS(dir) }

// LockPinDir takes the exclusive flock on dir that every writer of the
// node's pins holds (Open, AttachPod, ebpf/enforce's writers), and returns
// its release. It blocks while another process or goroutine holds it.
func LockPinDir(dir string) (unlock func(), err error) { return lockPath(dir) }
