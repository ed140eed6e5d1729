package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestWriteFirewall(t *testing.T) {
	tests := []struct {
		name         string
		nat, forward int
	}{
		{"issue's size", 10000, 1000},
		{"empty", 0, 0},
		{"odd nat count", 3, 1},
	}
	benchRanges := []netip.Prefix{netip.MustParsePrefix("10.199.0.0/16"), netip.MustParsePrefix("172.30.0.0/16")}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeFirewall(&b, firewallOptions{NATRules: tt.nat, ForwardRules: tt.forward}); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			if got := strings.Count(text, "\n-A PREROUTING "); got != tt.nat {
				t.Errorf("%d PREROUTING rules, want %d", got, tt.nat)
			}
			// The forward rules plus the conntrack one.
			if got := strings.Count(text, "\n-A FORWARD "); got != tt.forward+1 {
				t.Errorf("%d FORWARD rules, want %d", got, tt.forward+1)
			}
			if !strings.Contains(text, "--ctstate INVALID") {
				t.Error("no conntrack rule")
			}
			if got := strings.Count(text, "COMMIT\n"); got != 2 {
				t.Errorf("%d COMMITs, want 2 (nat and filter)", got)
			}
			// No rule may match benchmark traffic, or it would change
			// what is measured instead of only costing.
			seen := map[string]bool{}
			for _, line := range strings.Split(text, "\n") {
				if !strings.HasPrefix(line, "-A ") {
					continue
				}
				f := strings.Fields(line)
				for i, w := range f {
					if (w == "-d" || w == "-s") && i+1 < len(f) {
						p := netip.MustParsePrefix(f[i+1])
						for _, r := range benchRanges {
							if r.Overlaps(p) {
								t.Fatalf("rule matches benchmark range %s: %s", r, line)
							}
						}
					}
				}
				key, _, _ := strings.Cut(line, " -m comment") // the match alone
				if seen[key] {
					t.Fatalf("duplicate match: %s", line)
				}
				seen[key] = true
			}
		})
	}
}

func TestWriteFirewall_BadCounts(t *testing.T) {
	for _, o := range []firewallOptions{{NATRules: -1}, {ForwardRules: -1}, {ForwardRules: 1 << 20}} {
		if err := writeFirewall(&bytes.Buffer{}, o); !errors.Is(err, errUsage) {
			t.Errorf("%+v: err = %v, want errUsage", o, err)
		}
	}
}
