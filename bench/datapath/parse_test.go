package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustReadTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseIperf3(t *testing.T) {
	tests := []struct {
		name    string
		out     []byte
		want    float64
		wantErr string
	}{
		{"two streams", mustReadTestdata(t, "iperf3-2streams.json"), 9334818615.58012, ""},
		{"refused", mustReadTestdata(t, "iperf3-refused.json"), 0, "Connection refused"},
		{"not json", []byte("iperf3: error"), 0, "iperf3 json"},
		{"no end", []byte(`{"start": {}}`), 0, errNoResult.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperf3(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %f bit/s, want %f (the receiver's sum)", got, tt.want)
			}
		})
	}
}

func TestParseSockperf(t *testing.T) {
	tests := []struct {
		name     string
		out      []byte
		p50, p99 float64
		wantErr  error
	}{
		{"ping-pong full rtt", mustReadTestdata(t, "sockperf-pp.txt"), 17.322, 194.782, nil},
		{"no p99", []byte("sockperf: ---> percentile 50.000 =   17.322\n"), 0, 0, errNoResult},
		{"empty", nil, 0, 0, errNoResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockperf(tt.out)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.P50-tt.p50) > 1e-9 || math.Abs(got.P99-tt.p99) > 1e-9 {
				t.Errorf("got p50 %f p99 %f, want %f %f", got.P50, got.P99, tt.p50, tt.p99)
			}
		})
	}
}

func TestParseSnmpForwarded(t *testing.T) {
	real := string(mustReadTestdata(t, "snmp.txt"))
	tests := []struct {
		name    string
		snmp    string
		want    uint64
		wantErr bool
	}{
		{"router", "Ip: Forwarding DefaultTTL InReceives ForwDatagrams\nIp: 1 64 100 12345\n", 12345, false},
		{"kernel's layout", real, 0, false},
		{"no ip lines", "Icmp: InMsgs\nIcmp: 0\n", 0, true},
		{"no field", "Ip: Forwarding\nIp: 1\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSnmpForwarded([]byte(tt.snmp))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
