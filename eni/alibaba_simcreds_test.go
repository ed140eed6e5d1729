package eni_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni"
	"github.com/veni-cni/veni/eni/sim"
)

// Ensure a client signing with the instance RAM role keeps working across
// several lifetimes of short STS tokens, asking metadata again in time: the
// API never sees an expired token.
func TestAlibabaClient_Sim_RAMRoleRefresh(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) { cfg.STSLifetime = 2 * time.Second })
	prov := eni.NewRAMRoleCredentials(eni.NewMetadata(env.metaURL, nil), "")
	opts := env.fastOptions()
	opts.CredentialProvider = prov
	c := mustClient(t, opts)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := c.VSwitches(context.Background(), "vsw-sim-a"); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	snap := env.cloud.Snapshot()
	if snap.STSIssued < 3 {
		t.Fatalf("%d credentials issued over 5s of 2s tokens", snap.STSIssued)
	}
	if len(snap.AuthFailures) != 0 {
		t.Fatalf("requests refused: %v", snap.AuthFailures)
	}
}

// staleFirst hands out credentials the cloud already considers expired
// until Invalidate, as a provider whose clock trails the cloud's would.
type staleFirst struct {
	mu          sync.Mutex
	stale, good eni.Credentials
	invalidated bool
}

func (s *staleFirst) Credentials(context.Context) (eni.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.invalidated {
		return s.good, nil
	}
	return s.stale, nil
}

func (s *staleFirst) Invalidate() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = true
	return true
}

// Ensure a token the API refuses as expired is fetched anew once and the
// call repeated at once, instead of failing the caller.
func TestAlibabaClient_Sim_TokenRefusedIsRenewed(t *testing.T) {
	env := mustSim(t, func(cfg *sim.Config) { cfg.STSLifetime = 2 * time.Second })
	md := eni.NewMetadata(env.metaURL, nil)
	ctx := context.Background()
	stale, err := md.RAMRoleCredentials(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(stale.Expiration) + 50*time.Millisecond)
	good, err := md.RAMRoleCredentials(ctx, "")
	if err != nil || good.AccessKeyID == stale.AccessKeyID {
		t.Fatalf("fresh credentials: %v, %v", good, err)
	}
	prov := &staleFirst{stale: stale, good: good}
	opts := env.fastOptions()
	opts.CredentialProvider = prov
	opts.Retry = eni.RetryPolicy{MaxAttempts: 1}
	if _, err := mustClient(t, opts).VSwitches(ctx, "vsw-sim-a"); err != nil {
		t.Fatalf("a refused token was not renewed: %v", err)
	}
	if n := env.cloud.Snapshot().AuthFailures[sim.CodeSecurityTokenExpired]; n != 1 {
		t.Fatalf("%d expired-token refusals, want exactly 1", n)
	}

	// Fixed credentials are not asked again: the refusal is the answer.
	opts.CredentialProvider = eni.StaticCredentials(stale)
	_, err = mustClient(t, opts).VSwitches(ctx, "vsw-sim-a")
	if !errors.Is(err, eni.ErrAuth) || eni.Temporary(err) {
		t.Fatalf("err = %v, want a permanent ErrAuth", err)
	}
	if n := env.cloud.Snapshot().AuthFailures[sim.CodeSecurityTokenExpired]; n != 2 {
		t.Fatalf("%d expired-token refusals, want 2 (one more, no retry)", n)
	}
}

// Ensure a provider that has no credentials fails the call at once, without
// the back-off meant for the network, and says so.
func TestAlibabaClient_Sim_NoCredentials(t *testing.T) {
	env := mustSim(t, nil)
	noRole, err := env.cloud.AddInstance(sim.InstanceSpec{ID: "i-norole", RAMRole: sim.NoRAMRole})
	if err != nil {
		t.Fatal(err)
	}
	env.inst = noRole // metadata now answers as this instance
	opts := env.fastOptions()
	opts.Retry = eni.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: time.Second}
	opts.CredentialProvider = eni.NewRAMRoleCredentials(eni.NewMetadata(env.metaURL, nil), "")
	start := time.Now()
	_, err = mustClient(t, opts).VSwitches(context.Background(), "vsw-sim-a")
	if !errors.Is(err, eni.ErrNoCredentials) || eni.Temporary(err) {
		t.Fatalf("err = %v, want a permanent ErrNoCredentials", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("took %v: retried with back-off", took)
	}
}
