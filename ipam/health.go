package ipam

import (
	"fmt"
	"slices"
	"time"

	"github.com/veni-cni/veni/store"
)

// Health is the pool as a CNI STATUS or a daemon wake-up needs to see it.
type Health struct {
	Free    int      // free IPs on ready ENIs: what a warm ADD can take
	Blocked []string // active back-offs that stop the pool from growing, readable
}

// PoolHealth reads the pool's health in one short transaction.
func PoolHealth(db Store, now time.Time) (Health, error) {
	var h Health
	err := db.View(func(tx *store.ReadTx) error {
		var err error
		if h.Free, err = countFree(tx); err != nil {
			return err
		}
		pool, err := tx.PoolState()
		if err != nil {
			return err
		}
		for _, b := range pool.ActiveBackoffs(now) {
			h.Blocked = append(h.Blocked, fmt.Sprintf("%s: %s until %s", b.Scope, b.Reason, b.Until.Format(time.RFC3339)))
		}
		return nil
	})
	slices.Sort(h.Blocked)
	return h, err
}
