package eni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestRefreshTime(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		life, wantBefore time.Duration // refresh this long before expiry
	}{
		{time.Hour, 15 * time.Minute},
		{6 * time.Hour, 90 * time.Minute},
		{10 * time.Minute, 5 * time.Minute},
		{6 * time.Minute, 3 * time.Minute},
		{2 * time.Second, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.life.String(), func(t *testing.T) {
			got := refreshTime(t0, t0.Add(tc.life))
			if want := t0.Add(tc.life - tc.wantBefore); !got.Equal(want) {
				t.Fatalf("refresh at %v, want %v (%v before expiry)", got.Sub(t0), want.Sub(t0), tc.wantBefore)
			}
		})
	}
	if !refreshTime(t0, time.Time{}).IsZero() {
		t.Fatal("credentials without expiry got a refresh time")
	}
}

// fakeSource hands out numbered credentials that live for life, and fails
// while fail is set.
type fakeSource struct {
	now   *time.Time
	life  time.Duration
	n     int
	fail  error
	calls int
}

func (f *fakeSource) fetch(context.Context) (Credentials, error) {
	f.calls++
	if f.fail != nil {
		return Credentials{}, f.fail
	}
	f.n++
	return Credentials{AccessKeyID: fmt.Sprintf("STS.key%d", f.n), AccessKeySecret: "s", SecurityToken: "t",
		Expiration: f.now.Add(f.life)}, nil
}

func TestRefreshingCredentials_Credentials(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{now: &now, life: time.Hour}
	p := newRefreshingCredentials("test", src.fetch)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	get := func(want string) {
		t.Helper()
		c, err := p.Credentials(ctx)
		if err != nil || c.AccessKeyID != want {
			t.Fatalf("at +%v: %v, %v; want %s", now.Sub(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), c, err, want)
		}
	}
	get("STS.key1")
	now = now.Add(44 * time.Minute)
	get("STS.key1") // 16 minutes left: more than a quarter
	now = now.Add(2 * time.Minute)
	get("STS.key2") // 14 minutes left: refreshed
	if src.calls != 2 {
		t.Fatalf("%d fetches, want 2", src.calls)
	}

	// A failing refresh keeps the current credentials until they expire,
	// and does not ask the source on every call.
	src.fail = errors.New("metadata down")
	now = now.Add(50 * time.Minute)
	get("STS.key2")
	get("STS.key2")
	if src.calls != 3 {
		t.Fatalf("%d fetches, want 3 (one failed refresh, then a pause)", src.calls)
	}
	now = now.Add(11 * time.Minute) // past expiry
	if _, err := p.Credentials(ctx); err == nil || !errors.Is(err, src.fail) {
		t.Fatalf("expired and source down: err = %v", err)
	}
	src.fail = nil
	get("STS.key3")

	// Invalidate forces the next call to fetch.
	if !p.Invalidate() {
		t.Fatal("Invalidate reported nothing could change")
	}
	get("STS.key4")
}

func TestRefreshingCredentials_SourceHandsOutExpired(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newRefreshingCredentials("stale", func(context.Context) (Credentials, error) {
		return Credentials{AccessKeyID: "STS.old", AccessKeySecret: "s", Expiration: now.Add(-time.Minute)}, nil
	})
	p.now = func() time.Time { return now }
	if _, err := p.Credentials(context.Background()); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err = %v, want ErrNoCredentials for an expired token", err)
	}
}

// Ensure a credentials file with Expiration is read again before the token
// expires, so a rotation on disk is picked up.
func TestNewFileCredentials_Rotation(t *testing.T) {
	p := mustWriteFile(t, "")
	write := func(id string, exp time.Time) {
		t.Helper()
		body := fmt.Sprintf(`{"AccessKeyId":%q,"AccessKeySecret":"s","SecurityToken":"t","Expiration":%q}`, id, exp.UTC().Format(time.RFC3339))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Second)
	write("STS.first", now.Add(time.Hour))
	prov := NewFileCredentials(p)
	clock := now
	prov.now = func() time.Time { return clock }
	ctx := context.Background()
	if c, err := prov.Credentials(ctx); err != nil || c.AccessKeyID != "STS.first" {
		t.Fatalf("first read: %v, %v", c, err)
	}
	write("STS.second", now.Add(2*time.Hour))
	if c, _ := prov.Credentials(ctx); c.AccessKeyID != "STS.first" {
		t.Fatalf("re-read %s long before expiry", c.AccessKeyID)
	}
	clock = now.Add(50 * time.Minute)
	if c, err := prov.Credentials(ctx); err != nil || c.AccessKeyID != "STS.second" {
		t.Fatalf("near expiry: %v, %v; want the rotated file", c, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	prov.Invalidate()
	if _, err := prov.Credentials(ctx); !errors.Is(err, ErrInsecureCredentials) || !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("after chmod 644: err = %v, want ErrInsecureCredentials and ErrNoCredentials", err)
	}
}

func TestStaticCredentials(t *testing.T) {
	c := Credentials{AccessKeyID: "LTAIabc", AccessKeySecret: "s"}
	p := StaticCredentials(c)
	if got, err := p.Credentials(context.Background()); err != nil || got != c {
		t.Fatalf("got %v, %v", got, err)
	}
	if p.Invalidate() {
		t.Fatal("fixed credentials claim a refetch could change them")
	}
}
