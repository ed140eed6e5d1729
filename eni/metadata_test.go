package eni

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMetadata serves a fixed tree the way 100.100.100.200 does, with the
// token flow on or off, and can stall the first requests to test retries.
type fakeMetadata struct {
	tree       map[string]string
	withToken  bool
	stallFirst int32 // this many GETs hang past the client's timeout
	gets       atomic.Int32
	puts       atomic.Int32
}

const fakeToken = "tok-123"

func (f *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		if !f.withToken {
			http.NotFound(w, r)
			return
		}
		f.puts.Add(1)
		if r.Method != http.MethodPut || r.Header.Get(metadataTokenTTLHeader) == "" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(fakeToken))
		return
	}
	n := f.gets.Add(1)
	if n <= f.stallFirst {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		return
	}
	if f.withToken && r.Header.Get(metadataTokenHeader) != fakeToken {
		http.Error(w, "token required", http.StatusUnauthorized)
		return
	}
	v, ok := f.tree[strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(v))
}

func fakeTree() map[string]string {
	const mac = "00:16:3e:00:00:02"
	d := "network/interfaces/macs/" + mac + "/"
	return map[string]string{
		"instance-id":              "i-node1",
		"region-id":                "cn-hangzhou",
		"zone-id":                  "cn-hangzhou-k",
		"vpc-id":                   "vpc-1",
		"vswitch-id":               "vsw-1",
		"instance/instance-type":   "ecs.g7.large",
		"mac":                      "00:16:3e:00:00:01",
		"network/interfaces/macs/": "00:16:3e:00:00:01/\n00:16:3e:00:00:02/\n",
		d + "network-interface-id": "eni-2",
		d + "primary-ip-address":   "10.0.0.10",
		d + "private-ipv4s":        `["10.0.0.10","10.0.0.11"]`,
		d + "vswitch-id":           "vsw-1",
		d + "vswitch-cidr-block":   "10.0.0.0/24",
		d + "gateway":              "10.0.0.253",
	}
}

func mustMetadata(tb testing.TB, f *fakeMetadata) *Metadata {
	tb.Helper()
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	m := NewMetadata(srv.URL, nil)
	m.Timeout = 100 * time.Millisecond
	return m
}

func TestMetadata_Get(t *testing.T) {
	for _, withToken := range []bool{false, true} {
		name := "plain"
		if withToken {
			name = "token"
		}
		t.Run(name, func(t *testing.T) {
			f := &fakeMetadata{tree: fakeTree(), withToken: withToken}
			m := mustMetadata(t, f)
			ctx := context.Background()
			for _, tc := range []struct {
				get  func(context.Context) (string, error)
				want string
			}{
				{m.InstanceID, "i-node1"},
				{m.RegionID, "cn-hangzhou"},
				{m.ZoneID, "cn-hangzhou-k"},
				{m.VPCID, "vpc-1"},
				{m.VSwitchID, "vsw-1"},
				{m.InstanceType, "ecs.g7.large"},
			} {
				got, err := tc.get(ctx)
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			}
			primary, err := m.PrimaryMAC(ctx)
			if err != nil || primary.String() != "00:16:3e:00:00:01" {
				t.Fatalf("PrimaryMAC = %v, %v", primary, err)
			}
			macs, err := m.MACs(ctx)
			if err != nil || len(macs) != 2 || macs[1].String() != "00:16:3e:00:00:02" {
				t.Fatalf("MACs = %v, %v", macs, err)
			}
			e, err := m.ENI(ctx, macs[1])
			if err != nil {
				t.Fatal(err)
			}
			want := MetadataENI{
				ID: "eni-2", MAC: macs[1], PrimaryIP: netip.MustParseAddr("10.0.0.10"),
				PrivateIPs:  []netip.Addr{netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")},
				VSwitchID:   "vsw-1",
				VSwitchCIDR: netip.MustParsePrefix("10.0.0.0/24"),
				Gateway:     netip.MustParseAddr("10.0.0.253"),
			}
			if e.ID != want.ID || e.PrimaryIP != want.PrimaryIP || !slices.Equal(e.PrivateIPs, want.PrivateIPs) ||
				e.VSwitchID != want.VSwitchID || e.VSwitchCIDR != want.VSwitchCIDR || e.Gateway != want.Gateway {
				t.Fatalf("ENI = %+v, want %+v", e, want)
			}
			if withToken && f.puts.Load() != 1 {
				t.Fatalf("token fetched %d times, want once and reused", f.puts.Load())
			}
		})
	}
}

func TestMetadata_ENI_NotFound(t *testing.T) {
	m := mustMetadata(t, &fakeMetadata{tree: fakeTree()})
	mac, _ := net.ParseMAC("00:16:3e:00:00:09")
	_, err := m.ENI(context.Background(), mac)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestMetadata_Get_RetriesTimeouts(t *testing.T) {
	cases := []struct {
		name    string
		stall   int32
		wantErr bool
	}{
		{"one stall", 1, false},
		{"two stalls", 2, false},
		{"always stalls", 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeMetadata{tree: fakeTree(), stallFirst: tc.stall}
			m := mustMetadata(t, f)
			got, err := m.InstanceID(context.Background())
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error after %d attempts", got, m.Attempts)
				}
				if int(f.gets.Load()) != m.Attempts {
					t.Fatalf("server saw %d GETs, want %d", f.gets.Load(), m.Attempts)
				}
				return
			}
			if err != nil || got != "i-node1" {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestMetadata_Get_TokenRenewedAfterRejection(t *testing.T) {
	f := &fakeMetadata{tree: fakeTree(), withToken: true}
	m := mustMetadata(t, f)
	m.mu.Lock()
	m.token, m.tokenExpiry = "stale", time.Now().Add(time.Hour)
	m.mu.Unlock()
	got, err := m.InstanceID(context.Background())
	if err != nil || got != "i-node1" {
		t.Fatalf("got %q, %v; want a fresh token to be fetched", got, err)
	}
	if f.puts.Load() != 1 {
		t.Fatalf("token fetched %d times, want 1", f.puts.Load())
	}
}
