package main

import (
	"strings"
	"testing"
)

func TestParseInitTrace_Lines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []initEntry
		wantErr bool
	}{
		{
			name: "runtime lines among plugin output",
			in: "init runtime @0.076 ms, 0.14 ms clock, 0 bytes, 0 allocs\n" +
				"some plugin log line\n" +
				"init github.com/prometheus/procfs @5.7 ms, 0.31 ms clock, 96536 bytes, 892 allocs\n",
			want: []initEntry{
				{pkg: "runtime", at: 0.076, clock: 0.14},
				{pkg: "github.com/prometheus/procfs", at: 5.7, clock: 0.31, bytes: 96536, allocs: 892},
			},
		},
		{name: "nothing traced", in: "CNI error\n", want: nil},
		{name: "truncated line", in: "init os @1.5 ms, 0.040 ms clock\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseInitTrace(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d entries %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestMedian_Types(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"odd", []float64{3, 1, 2}, 2},
		{"even lower middle", []float64{4, 1, 3, 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Fatalf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
