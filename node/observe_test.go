package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
)

// Ensure an observer set on the Env sees every cloud attempt of its
// client, also when the client was built before it was set, and none once
// it is cleared.
func TestEnv_ObserveCloud_SeesAttempts(t *testing.T) {
	path, _, inst := mustSimNode(t)
	env, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var (
		mu   sync.Mutex
		seen []string
	)
	observe := func(action, code string, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if took < 0 {
			t.Errorf("%s took %s", action, took)
		}
		seen = append(seen, action+" "+code)
	}
	list := func() {
		t.Helper()
		if _, err := env.Cloud().ENIs(ctx, eni.ENIFilter{InstanceID: inst.ID}); err != nil {
			t.Fatal(err)
		}
	}
	list() // builds the client with nobody observing
	env.ObserveCloud(observe)
	list()
	env.ObserveCloud(nil)
	list()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "DescribeNetworkInterfaces OK" {
		t.Errorf("observed %q, want one DescribeNetworkInterfaces OK", seen)
	}
}
