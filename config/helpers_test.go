package config

import (
	"errors"
	"testing"
)

func wantErr(tb testing.TB, err, want error) {
	tb.Helper()
	switch {
	case want == nil && err != nil:
		tb.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		tb.Fatalf("error = %v, want %v", err, want)
	}
}
