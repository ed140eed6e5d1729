package eni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// CredentialProvider hands out the credentials the next request is signed
// with. AlibabaClient asks it before every attempt, so a rotated token is
// used from the next request on. Implementations are safe for concurrent
// use.
type CredentialProvider interface {
	// Credentials returns credentials that are valid now, fetching new
	// ones first when the current ones are near their expiry.
	//
	// May return an error wrapping ErrNoCredentials.
	Credentials(ctx context.Context) (Credentials, error)

	// Invalidate tells the provider the cloud refused what it handed out
	// (an expired or unknown token), so the next Credentials fetches anew.
	// It reports whether fetching anew may give something else: false for
	// fixed credentials, where a retry would be refused again.
	Invalidate() bool
}

// StaticCredentials returns a provider of fixed credentials.
func StaticCredentials(c Credentials) CredentialProvider { return staticCredentials{c} }

type staticCredentials struct{ c Credentials }

func (s staticCredentials) Credentials(context.Context) (Credentials, error) { return s.c, nil }
func (staticCredentials) Invalidate() bool                                   { return false }
func (s staticCredentials) String() string                                   { return "static " + s.c.String() }

// RefreshingCredentials caches what a source returns and asks the source
// again before the credentials expire. With L the lifetime (Expiration
// minus the time they were fetched), it fetches anew once less than
// max(L/4, min(5 min, L/2)) is left: a quarter of the lifetime, but at
// least five minutes ahead when the lifetime allows it. A one-hour token is
// renewed 15 minutes before it expires, a ten-minute one 5 minutes before,
// a two-second one (tests) 1 second before. Credentials without Expiration
// are kept until Invalidate.
//
// When a refresh fails the current credentials are used until they
// expire, and the source is asked again at most every few seconds.
type RefreshingCredentials struct {
	name  string
	fetch func(context.Context) (Credentials, error)
	log   *slog.Logger
	now   func() time.Time // replaced by tests

	mu        sync.Mutex
	cur       Credentials
	valid     bool
	refreshAt time.Time // zero: never
	failedAt  time.Time
}

// minRefreshMargin is the "at least five minutes ahead" of the rule above.
const minRefreshMargin = 5 * time.Minute

// newRefreshingCredentials returns a provider named name (used in errors and
// logs) that gets credentials from fetch. fetch is called with the lock
// held, so at most one fetch runs at a time.
func newRefreshingCredentials(name string, fetch func(context.Context) (Credentials, error)) *RefreshingCredentials {
	return &RefreshingCredentials{name: name, fetch: fetch, log: slog.Default(), now: time.Now}
}

// NewFileCredentials returns a provider that reads a credentials file (see
// ReadCredentialsFile) and reads it again before the token it holds
// expires: whoever provides the file rotates it on disk.
//
// Its Credentials may return an error wrapping ErrNoCredentials (always,
// when the file gives none) and ErrInsecureCredentials.
func NewFileCredentials(path string) *RefreshingCredentials {
	return newRefreshingCredentials("credentials file "+path, func(context.Context) (Credentials, error) {
		c, err := ReadCredentialsFile(path)
		if err != nil && !errors.Is(err, ErrNoCredentials) {
			err = fmt.Errorf("%w: %w", ErrNoCredentials, err)
		}
		return c, err
	})
}

// String names the provider; it never shows credentials.
func (p *RefreshingCredentials) String() string { return p.name }

// Credentials implements CredentialProvider.
func (p *RefreshingCredentials) Credentials(ctx context.Context) (Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	usable := p.valid && !p.cur.expired(now)
	if usable && (p.refreshAt.IsZero() || now.Before(p.refreshAt)) {
		return p.cur, nil
	}
	if usable && now.Sub(p.failedAt) < p.retryGap() {
		return p.cur, nil
	}
	c, err := p.fetch(ctx)
	if err != nil {
		p.failedAt = now
		if usable {
			p.log.Warn("credentials refresh failed; using the current ones until they expire",
				"source", p.name, "expires", p.cur.Expiration, "err", err)
			return p.cur, nil
		}
		return Credentials{}, fmt.Errorf("%s: %w", p.name, err)
	}
	if c.expired(now) {
		p.failedAt = now
		return Credentials{}, fmt.Errorf("%s: token expired at %s: %w", p.name, c.Expiration.UTC().Format(time.RFC3339), ErrNoCredentials)
	}
	p.cur, p.valid, p.failedAt = c, true, time.Time{}
	p.refreshAt = refreshTime(now, c.Expiration)
	return c, nil
}

// Invalidate implements CredentialProvider: the next Credentials fetches.
func (p *RefreshingCredentials) Invalidate() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.valid = false
	return true
}

// retryGap is how long to keep the current credentials after a failed
// refresh before asking the source again.
func (p *RefreshingCredentials) retryGap() time.Duration {
	if p.refreshAt.IsZero() || p.cur.Expiration.IsZero() {
		return 5 * time.Second
	}
	return min(5*time.Second, p.cur.Expiration.Sub(p.refreshAt)/8)
}

// refreshTime applies the rule in RefreshingCredentials' comment.
func refreshTime(fetched, expires time.Time) time.Time {
	if expires.IsZero() {
		return time.Time{}
	}
	life := expires.Sub(fetched)
	margin := max(life/4, min(minRefreshMargin, life/2))
	return expires.Add(-margin)
}
