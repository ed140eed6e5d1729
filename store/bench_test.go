package store

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchWriters is how many CNI ADDs write the store at once in
// BenchmarkFile_View_UnderWriters.
const benchWriters = 8

// BenchmarkFile_View_UnderWriters measures what a CNI DEL's first step
// costs (open the store, one read transaction looking up the node and the
// attachment, close) while benchWriters goroutines, each with its own opens
// as separate processes would have, write in a loop the way parallel CNI
// ADDs do: open, one Update that reserves or releases an address (two puts,
// committed with fdatasync), close. It runs the View every veni before
// shared readers had (exclusive flock, bbolt read-write) and the shared
// View side by side, reports p50 and p99 of each and logs their ratios.
//
// The store is created under the test's temporary directory: point TMPDIR
// at the disk the node's /var/lib/veni is on, since fdatasync is most of a
// writer's time.
//
//	go test ./store -run '^$' -bench View_UnderWriters -benchtime 2000x -count 5 -v
func BenchmarkFile_View_UnderWriters(b *testing.B) {
	modes := []struct {
		name      string
		exclusive bool // the behaviour before shared readers
	}{
		{"view=exclusive(before)", true},
		{"view=shared(after)", false},
	}
	p50, p99 := make(map[bool]time.Duration), make(map[bool]time.Duration)
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "veni.db")
			mustOpenOnce(b, path, Options{}, func(db *DB) {
				addrs := make([]string, benchWriters)
				for i := range addrs {
					addrs[i] = fmt.Sprintf("10.0.0.%d", 10+i)
				}
				mustSeed(b, db, addrs...)
				mustUpdate(b, db, func(tx *WriteTx) error { return tx.PutNode(NodeInfo{InstanceID: "i-test"}) })
			})
			opts := Options{Timeout: time.Minute, legacy: m.exclusive}
			stop := make(chan struct{})
			var writes atomic.Int64
			var wg sync.WaitGroup
			for w := range benchWriters {
				wg.Go(func() { benchWriter(b, path, opts, w, stop, &writes) })
			}
			reader := File{Path: path, Options: opts}
			key := NewOwnerKey("c-del", "eth0")
			lat := make([]time.Duration, 0, b.N)
			// Let every writer get going before the first sample.
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			for b.Loop() {
				t := time.Now()
				err := reader.View(func(tx *ReadTx) error {
					if _, err := tx.Node(); err != nil {
						return err
					}
					_, err := tx.Allocation(key)
					if isNotFound(err) {
						return nil
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			elapsed := time.Since(start)
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			p50[m.exclusive], p99[m.exclusive] = percentile(lat, 50), percentile(lat, 99)
			b.ReportMetric(float64(p50[m.exclusive].Microseconds()), "p50-µs")
			b.ReportMetric(float64(p99[m.exclusive].Microseconds()), "p99-µs")
			b.ReportMetric(float64(writes.Load())/elapsed.Seconds(), "writes/s")
		})
	}
	if p50[false] > 0 && p99[false] > 0 {
		b.Logf("read transaction under %d writers: p50 %s → %s (%.1f× faster), p99 %s → %s (%.1f× faster)",
			benchWriters, p50[true], p50[false], float64(p50[true])/float64(p50[false]),
			p99[true], p99[false], float64(p99[true])/float64(p99[false]))
	}
}

// BenchmarkFile_View measures the same read transaction as
// BenchmarkFile_View_UnderWriters with nobody else on the store: the cost
// of the read path itself (locks, the file check, bbolt's open), before and
// after.
func BenchmarkFile_View(b *testing.B) {
	for _, exclusive := range []bool{true, false} {
		name := "view=shared(after)"
		if exclusive {
			name = "view=exclusive(before)"
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "veni.db")
			mustOpenOnce(b, path, Options{}, func(db *DB) {
				mustSeed(b, db, "10.0.0.10")
				mustUpdate(b, db, func(tx *WriteTx) error { return tx.PutNode(NodeInfo{InstanceID: "i-test"}) })
			})
			reader := File{Path: path, Options: Options{legacy: exclusive}}
			for b.Loop() {
				if err := reader.View(func(tx *ReadTx) error { _, err := tx.Node(); return err }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchWriter reserves and releases its own address until stop, opening
// the store for every transaction.
func benchWriter(tb testing.TB, path string, opts Options, w int, stop <-chan struct{}, writes *atomic.Int64) {
	addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + w)})
	key := NewOwnerKey(fmt.Sprintf("c-add-%d", w), "eth0")
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		db, err := Open(path, opts)
		if err != nil {
			tb.Error(err)
			return
		}
		err = db.Update(func(tx *WriteTx) error {
			if i%2 == 0 {
				return reserve(tx, addr, key)
			}
			if err := tx.DeleteAllocation(key); err != nil {
				return err
			}
			return tx.PutIP(IP{Addr: addr, ENIID: "eni-a", State: IPFree, AddedAt: t0, FreeSince: time.Now()})
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			tb.Error(err)
			return
		}
		writes.Add(1)
	}
}

// percentile returns the p-th percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
