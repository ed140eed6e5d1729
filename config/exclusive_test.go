package config

import (
	"errors"
	"strings"
	"testing"
)

// Ensure exclusive_eni_type takes Terway's label value only, and refuses
// what an exclusive ENI cannot carry (prefixes, dual stack), naming the
// field.
func TestParse_ExclusiveENIType(t *testing.T) {
	tests := []struct {
		conf    string
		want    bool   // ExclusiveENI
		wantErr string // "" means valid
	}{
		{conf: `{}`},
		{conf: `{"exclusive_eni_type": "eniOnly"}`, want: true},
		{conf: `{"exclusive_eni_type": "eni"}`, wantErr: `exclusive_eni_type: "eni": want "eniOnly"`},
		{conf: `{"exclusive_eni_type": "eniOnly", "enable_ip_prefix": true}`, wantErr: "enable_ip_prefix cannot be set with it"},
		{conf: `{"exclusive_eni_type": "eniOnly", "ip_stack": "dual"}`, wantErr: `ip_stack "dual" cannot be set with it`},
		{conf: `{"exclusive_eni_type": "eniOnly", "ip_stack": "ipv6"}`, wantErr: `ip_stack "ipv6" cannot be set with it`},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			c, _, err := Parse([]byte(tt.conf))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want ErrInvalid saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ExclusiveENI() != tt.want {
				t.Errorf("ExclusiveENI = %t, want %t", c.ExclusiveENI(), tt.want)
			}
			wantMode := ENIModeShared
			if tt.want {
				wantMode = ENIModeExclusive
			}
			if c.ENIMode() != wantMode {
				t.Errorf("ENIMode = %q, want %q", c.ENIMode(), wantMode)
			}
		})
	}
}
