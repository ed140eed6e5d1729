package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/eni/sim"
)

// A sim of a hundred nodes lives in one kernel, and some of the kernel's
// limits count every namespace together. The server raises those it needs
// before it builds anything, and lowers them again when it goes; a sim
// that cannot have them refuses to start, naming the sysctl.
//
//   - net.ipv4.neigh.default.gc_thresh3 (and gc_thresh2): the IPv4
//     neighbour table's hard (and soft) limit on entries that are not
//     permanent, shared by every namespace. Each address the sim holds
//     makes such entries: the node's entry for a pod behind its veth, and
//     every peer's entry for it on its ENI, as the ENI's subnet is on-link
//     (the VPC answers ARP for the whole vSwitch, as the cloud's does).
//     Over the limit the kernel logs "neighbour: arp_cache: neighbor table
//     overflow!" and packets to new neighbours are dropped. gc_thresh1 is
//     left alone: raising it would only stop the collection of stale
//     entries;
//   - fs.inotify.max_user_instances (128 by default), counted per user: a
//     veni daemon watches its store with one instance, and every daemon
//     runs as root;
//   - fs.inotify.max_user_watches, per user likewise;
//   - kernel.pid_max, which bounds threads as well as processes: a daemon
//     runs about ten threads, a CNI plugin a few;
//   - user.max_net_namespaces: a namespace per node and per pod.
//
// Sims of different names may run at once and need different values, so
// the changes are kept in one registry for the machine
// (/run/veni/sim-sysctls.json, under a lock): the value before any sim
// raised it, and what each live sim needs. A value is the largest need of
// the sims holding it, never below the original; when the last holder
// goes, the original comes back, unless someone else changed the value
// meanwhile (then it is left as they set it). Down releases a crashed
// sim's holds by its name, as the server would have; and as a sim's
// server holds its name's lock while it runs, every raise and release
// also drops the holds of sims whose lock nobody holds (killed, and never
// downed), which would otherwise pin the limits until the machine reboots.

// Kernel-wide defaults the registry lives under.
const (
	sysctlRegistryFile = "sim-sysctls.json"
	sysctlRegistryLock = "sim-sysctls.lock"
	procSys            = "/proc/sys"
)

// KernelLimit is one sysctl a sim needs at least at Need.
type KernelLimit struct {
	Key  string `json:"key"` // dotted, e.g. net.ipv4.neigh.default.gc_thresh3
	Need int64  `json:"need"`
	Why  string `json:"why"`
}

// KernelChange is what the server did to one sysctl, as state.json and
// "veni sim status" show it.
type KernelChange struct {
	Key    string `json:"key"`
	Before int64  `json:"before"` // before any sim raised it
	Now    int64  `json:"now"`    // as this sim left it once started
	Need   int64  `json:"need"`
}

// Per-node quantities the limits are computed from (measured with
// veni 0.x: a daemon holds one inotify instance with one watch and about
// eight threads).
const (
	neighPerAddress    = 4 // non-permanent neighbour entries an address may cause
	neighHeadroom      = 1024
	inotifyPerNode     = 2 // instances: the daemon's, and one spare for a restart overlapping its predecessor
	inotifyHeadroom    = 128
	watchesPerNode     = 16
	watchesHeadroom    = 8192
	threadsPerNode     = 32 // the daemon, CNI plugins running at once, veni status
	threadsHeadroom    = 4096
	namespacesHeadroom = 64
)

// KernelLimits returns what a sim of spec needs of the kernel: it may hold
// every address its nodes' instance type allows.
func KernelLimits(spec Spec) ([]KernelLimit, error) {
	typ, ok := instanceType(spec.InstanceType)
	if !ok {
		return nil, fmt.Errorf("instance type %q: %w", spec.InstanceType, sim.ErrUnknownInstanceType)
	}
	n := int64(spec.Nodes)
	perNode := int64(typ.ENIs * typ.IPv4PerENI)
	addrs := n * perNode
	neigh := addrs*neighPerAddress + neighHeadroom
	why := fmt.Sprintf("%d nodes of %s, %d addresses each", spec.Nodes, typ.ID, perNode)
	return []KernelLimit{
		{Key: "net.ipv4.neigh.default.gc_thresh3", Need: neigh, Why: why},
		{Key: "net.ipv4.neigh.default.gc_thresh2", Need: neigh / 2, Why: why},
		{Key: "fs.inotify.max_user_instances", Need: n*inotifyPerNode + inotifyHeadroom, Why: fmt.Sprintf("%d node daemons", spec.Nodes)},
		{Key: "fs.inotify.max_user_watches", Need: n*watchesPerNode + watchesHeadroom, Why: fmt.Sprintf("%d node daemons", spec.Nodes)},
		{Key: "kernel.pid_max", Need: n*threadsPerNode + threadsHeadroom, Why: fmt.Sprintf("%d node daemons and their plugins", spec.Nodes)},
		{Key: "user.max_net_namespaces", Need: n*(1+perNode) + namespacesHeadroom, Why: why},
	}, nil
}

func instanceType(id string) (sim.InstanceType, bool) {
	for _, t := range sim.DefaultInstanceTypes() {
		if t.ID == id {
			return t, true
		}
	}
	return sim.InstanceType{}, false
}

// sysctls reads and writes the kernel's sysctls and keeps the registry of
// what the sims changed. Tests point it at a directory of their own.
type sysctls struct {
	proc string // /proc/sys
	dir  string // where the registry and its lock live: LockDir
	log  *slog.Logger
	// refuse, when set, fails writes to these keys (tests: /proc/sys
	// read-only, as in a container).
	refuse map[string]error
}

func kernelSysctls(log *slog.Logger) sysctls { return sysctls{proc: procSys, dir: LockDir, log: log} }

type sysctlRegistry map[string]*sysctlEntry // by key

type sysctlEntry struct {
	Original int64            `json:"original"` // before any sim raised it
	Set      int64            `json:"set"`      // what the sims last wrote
	Holders  map[string]int64 `json:"holders"`  // sim name: its need
}

func (s sysctls) path(key string) string {
	return filepath.Join(s.proc, strings.ReplaceAll(key, ".", "/"))
}

func (s sysctls) read(key string) (int64, error) {
	b, err := os.ReadFile(s.path(key))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func (s sysctls) write(key string, v int64) error {
	if err := s.refuse[key]; err != nil {
		return err
	}
	return os.WriteFile(s.path(key), []byte(strconv.FormatInt(v, 10)), 0o644)
}

// raise makes every limit at least its need for sim name, records the
// hold, and returns what it did. When a limit is short and cannot be
// raised it releases what it took and returns an error naming the sysctl.
func (s sysctls) raise(name string, limits []KernelLimit) (changes []KernelChange, err error) {
	err = s.withRegistry(func(reg sysctlRegistry) error {
		if err := s.drop(reg, func(h string) bool { return h != name && !s.holderAlive(h) }); err != nil {
			s.log.Warn("release the kernel limits of sims that died", "err", err)
		}
		for _, l := range limits {
			cur, err := s.read(l.Key)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					s.log.Warn("kernel limit not found; not checked", "sysctl", l.Key)
					continue
				}
				return fmt.Errorf("read %s: %w", l.Key, err)
			}
			e, held := reg[l.Key]
			if !held {
				if cur >= l.Need {
					changes = append(changes, KernelChange{Key: l.Key, Before: cur, Now: cur, Need: l.Need})
					continue // enough already: nothing to hold or restore
				}
				e = &sysctlEntry{Original: cur, Set: cur, Holders: map[string]int64{}}
				reg[l.Key] = e
			}
			e.Holders[name] = l.Need
			target := e.target()
			if cur < target {
				if err := s.write(l.Key, target); err != nil {
					delete(e.Holders, name)
					if len(e.Holders) == 0 {
						delete(reg, l.Key)
					}
					return fmt.Errorf("kernel limit %s is %d and %s may need %d, but it cannot be raised: %w (raise it as root: sysctl -w %s=%d; or run fewer nodes)",
						l.Key, cur, l.Why, l.Need, err, l.Key, l.Need)
				}
				s.log.Info("kernel limit raised", "sysctl", l.Key, "from", cur, "to", target, "for", l.Why)
				cur = target
			}
			e.Set = cur
			changes = append(changes, KernelChange{Key: l.Key, Before: e.Original, Now: cur, Need: l.Need})
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(err, s.release(name))
	}
	return changes, nil
}

// release drops sim name's holds, and those of sims that died without a
// down (see holderAlive): each value goes down to what the other holders
// need, or back to the original without holders, unless someone else
// changed it meanwhile. Releasing a name that holds nothing is fine.
func (s sysctls) release(name string) error {
	return s.withRegistry(func(reg sysctlRegistry) error {
		return s.drop(reg, func(h string) bool { return h == name || !s.holderAlive(h) })
	})
}

// drop removes the holders gone says are gone and lowers each value they
// held to what is left: the other holders' largest need, or the original.
func (s sysctls) drop(reg sysctlRegistry, gone func(holder string) bool) error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(reg)) {
		e := reg[key]
		n := len(e.Holders)
		maps.DeleteFunc(e.Holders, func(h string, _ int64) bool { return gone(h) })
		if len(e.Holders) == n {
			continue
		}
		target := e.Original
		if len(e.Holders) > 0 {
			target = e.target()
		} else {
			delete(reg, key)
		}
		cur, err := s.read(key)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("read %s: %w", key, err))
		case cur != e.Set:
			s.log.Warn("kernel limit changed by someone else; left as it is", "sysctl", key, "now", cur, "sims set", e.Set)
		case cur != target:
			if err := s.write(key, target); err != nil {
				errs = append(errs, fmt.Errorf("restore %s to %d: %w", key, target, err))
				continue
			}
			e.Set = target
			s.log.Info("kernel limit restored", "sysctl", key, "from", cur, "to", target)
		}
	}
	return errors.Join(errs...)
}

// holderAlive tells whether sim name still runs: its server holds the
// name's lock (lockName) from before it raises anything until after it
// released, and so does a down at work. A sim killed with no down after
// it holds nothing, and its holds must not pin the limits for good.
func (s sysctls) holderAlive(name string) bool {
	f, err := os.OpenFile(lockPath(s.dir, name), os.O_RDWR, 0)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // unreadable: assume alive, keep its hold
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

// target is the largest need of the holders, never below the original.
func (e *sysctlEntry) target() int64 {
	t := e.Original
	for _, n := range e.Holders {
		t = max(t, n)
	}
	return t
}

// withRegistry runs fn on the registry under its lock and writes it back.
func (s sysctls) withRegistry(fn func(sysctlRegistry) error) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("sysctl registry: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.dir, sysctlRegistryLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("sysctl registry lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("sysctl registry lock: %w", err)
	}
	path := filepath.Join(s.dir, sysctlRegistryFile)
	reg := sysctlRegistry{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read sysctl registry: %w", err)
	default:
		if err := json.Unmarshal(b, &reg); err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
	}
	ferr := fn(reg)
	if len(reg) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return errors.Join(ferr, err)
		}
		return ferr
	}
	return errors.Join(ferr, writeJSONFile(path, reg, 0o600))
}
