package cluster

import (
	"errors"
	"sync"
)

// forEach runs fn(0) … fn(n-1) with at most limit running at once and
// returns their errors joined. After the first error it starts no more
// (those already running finish): a start-up that failed is torn down, not
// completed.
func forEach(n, limit int, fn func(i int) error) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		failed bool
	)
	sem := make(chan struct{}, max(limit, 1))
	for i := range n {
		sem <- struct{}{}
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				errs, failed = append(errs, err), true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// forAll is forEach that runs every fn whatever fails: for teardown and
// for reads, where one node's failure must not hide the others.
func forAll(n, limit int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(limit, 1))
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}
