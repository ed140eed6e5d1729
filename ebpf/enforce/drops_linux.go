package enforce

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/veni-cni/veni/policy"
)

// ErrClosed is returned by DropReader.Read once the reader is closed.
var ErrClosed = ringbuf.ErrClosed

// DropReader reads the node's drop events from the ring buffer. The ring
// buffer has one read position: events one reader consumes, another never
// sees, so run one reader per node (the daemon, or "veni policy drops").
// When it falls behind, the programs count the events they could not write
// (Counters.EventsLost) and drop the packets all the same.
type DropReader struct {
	r *ringbuf.Reader
}

// Drops opens a reader of drop events. Close it when done.
func (e *Enforcer) Drops() (*DropReader, error) {
	r, err := ringbuf.NewReader(e.objs.VeniPolDrops)
	if err != nil {
		return nil, fmt.Errorf("open drop events: %w", err)
	}
	return &DropReader{r: r}, nil
}

// Read blocks until the next drop (or the deadline: os.ErrDeadlineExceeded,
// or Close: ErrClosed).
func (d *DropReader) Read() (Drop, error) {
	rec, err := d.r.Read()
	if err != nil {
		return Drop{}, err
	}
	return parseDrop(rec.RawSample)
}

// SetDeadline makes Read give up at t (zero: never).
func (d *DropReader) SetDeadline(t time.Time) { d.r.SetDeadline(t) }

// Close stops the reader; a blocked Read returns ErrClosed.
func (d *DropReader) Close() error { return d.r.Close() }

// dropSize is sizeof(struct pol_drop), drop6Size sizeof(struct pol_drop6):
// an IPv6 drop is pol_drop with zero IPv4 addresses, then the source and
// destination IPv6 addresses.
const (
	dropSize  = 32
	drop6Size = dropSize + 32
)

func parseDrop(b []byte) (Drop, error) {
	if len(b) < dropSize {
		return Drop{}, fmt.Errorf("drop event of %d bytes, want %d", len(b), dropSize)
	}
	ne := binary.NativeEndian
	ktime := ne.Uint64(b[0:8])
	proto := policy.Protocol(b[28])
	addr := func(off int) netip.Addr { return netip.AddrFrom4([4]byte(b[off : off+4])) }
	if len(b) >= drop6Size {
		// saddr (16) and daddr (20) stand for the IPv6 addresses after
		// the IPv4 event.
		v6 := map[int]int{16: dropSize, 20: dropSize + 16}
		addr = func(off int) netip.Addr { return netip.AddrFrom16([16]byte(b[v6[off] : v6[off]+16])) }
	}
	port := func(off int) uint16 { return binary.BigEndian.Uint16(b[off : off+2]) }
	return Drop{
		Time:       monoToWall(ktime),
		Ifindex:    int(ne.Uint32(b[8:12])),
		Generation: ne.Uint32(b[12:16]),
		Src:        netip.AddrPortFrom(addr(16), port(24)),
		Dst:        netip.AddrPortFrom(addr(20), port(26)),
		Protocol:   proto,
		Direction:  Direction(b[29]),
		Reason:     Reason(b[30]),
	}, nil
}

// monoToWall converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall time.
func monoToWall(ktime uint64) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now()
	}
	now := time.Now()
	return now.Add(-time.Duration(uint64(ts.Nano()) - ktime))
}
