package sim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// callerHeader names the instance in tests that identify callers by header.
const callerHeader = "X-Test-Instance"

func identifyByHeader(r *http.Request) (string, bool) {
	id := r.Header.Get(callerHeader)
	return id, id != ""
}

func mustServeMetadata(tb testing.TB, c *Cloud) string {
	tb.Helper()
	srv := httptest.NewServer(c.MetadataHandler())
	tb.Cleanup(srv.Close)
	return srv.URL
}

func mdGet(tb testing.TB, base, instanceID, path string, header http.Header) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if instanceID != "" {
		req.Header.Set(callerHeader, instanceID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCloud_Metadata_PerCaller(t *testing.T) {
	c, _, one, client := newTestAPI(t, func(cfg *Config) { cfg.IdentifyCaller = identifyByHeader })
	two := mustInstance(t, c, InstanceSpec{ID: "i-two", Hostname: "node-two", Type: "ecs.g6.large", VSwitchID: "vsw-sim-b"})
	eni := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.VSwitchId = "vsw-sim-b"
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	})
	base := mustServeMetadata(t, c)
	mac := "/latest/meta-data/network/interfaces/macs/" + eni.MacAddress + "/"

	// Before the attach completes, the ENI is not in the metadata.
	if status, _ := mdGet(t, base, two.ID, mac+"network-interface-id", nil); status != http.StatusNotFound {
		t.Fatalf("unattached eni answered %d", status)
	}
	mustAttach(t, client, eni.NetworkInterfaceId, two.ID)

	tests := []struct {
		instance, path, want string
	}{
		{one.ID, "/latest/meta-data/instance-id", one.ID},
		{one.ID, "/latest/meta-data/private-ipv4", "172.30.1.1"},
		{one.ID, "/latest/meta-data/vswitch-cidr-block", "172.30.1.0/24"},
		{one.ID, "/latest/meta-data/instance/instance-type", "ecs.g7.large"},
		{one.ID, "/latest/meta-data/network/interfaces/macs/", one.PrimaryMAC.String() + "/"},
		{two.ID, "/latest/meta-data/hostname", "node-two"},
		{two.ID, "/latest/meta-data/instance-id", "i-two"},
		{two.ID, "/latest/meta-data/region-id", "cn-hangzhou"},
		{two.ID, "/latest/meta-data/zone-id", "cn-hangzhou-h"},
		{two.ID, "/latest/meta-data/vpc-id", "vpc-sim-main"},
		{two.ID, "/latest/meta-data/vpc-cidr-block", "172.30.0.0/16"},
		{two.ID, "/latest/meta-data/vswitch-id", "vsw-sim-b"},
		{two.ID, "/latest/meta-data/mac", two.PrimaryMAC.String()},
		{two.ID, "/latest/meta-data/private-ipv4", "172.30.2.1"},
		{two.ID, "/latest/meta-data/network/interfaces/macs", two.PrimaryMAC.String() + "/\n" + eni.MacAddress + "/"},
		{two.ID, mac + "network-interface-id", eni.NetworkInterfaceId},
		{two.ID, mac + "primary-ip-address", "172.30.2.2"},
		{two.ID, mac + "private-ipv4s", `["172.30.2.2","172.30.2.3"]`},
		{two.ID, mac + "gateway", "172.30.2.253"},
		{two.ID, mac + "netmask", "255.255.255.0"},
		{two.ID, mac + "vswitch-cidr-block", "172.30.2.0/24"},
		{two.ID, mac + "vswitch-id", "vsw-sim-b"},
		{two.ID, mac + "vpc-id", "vpc-sim-main"},
	}
	for _, tt := range tests {
		t.Run(tt.instance+tt.path, func(t *testing.T) {
			status, body := mdGet(t, base, tt.instance, tt.path, nil)
			if status != http.StatusOK || body != tt.want {
				t.Fatalf("http %d %q, want %q", status, body, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name, instance, path string
		status               int
	}{
		{"unknown path", one.ID, "/latest/meta-data/nope", http.StatusNotFound},
		{"outside meta-data", one.ID, "/latest/user-data", http.StatusNotFound},
		{"someone else's eni", one.ID, mac + "network-interface-id", http.StatusNotFound},
		{"unknown instance", "i-ghost", "/latest/meta-data/instance-id", http.StatusForbidden},
		{"anonymous", "", "/latest/meta-data/instance-id", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := mdGet(t, base, tt.instance, tt.path, nil); status != tt.status {
				t.Fatalf("http %d %q, want %d", status, body, tt.status)
			}
		})
	}
}

func TestCloud_Metadata_Token(t *testing.T) {
	c, _ := mustCloud(t, func(cfg *Config) { cfg.IdentifyCaller = identifyByHeader })
	one := mustInstance(t, c, InstanceSpec{})
	two := mustInstance(t, c, InstanceSpec{})
	base := mustServeMetadata(t, c)
	token := func(instanceID, ttl string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
		req.Header.Set(callerHeader, instanceID)
		if ttl != "" {
			req.Header.Set("X-aliyun-ecs-metadata-token-ttl-seconds", ttl)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, tok := token(one.ID, "60")
	if status != http.StatusOK || len(tok) < 32 {
		t.Fatalf("token: http %d %q", status, tok)
	}
	for _, tt := range []struct {
		name, instance, token string
		status                int
	}{
		{"valid token", one.ID, tok, http.StatusOK},
		{"no token", one.ID, "", http.StatusOK},
		{"forged token", one.ID, "forged", http.StatusUnauthorized},
		{"another instance's token", two.ID, tok, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("X-aliyun-ecs-metadata-token", tt.token)
			}
			if status, body := mdGet(t, base, tt.instance, "/latest/meta-data/instance-id", h); status != tt.status {
				t.Fatalf("http %d %q, want %d", status, body, tt.status)
			}
		})
	}
	for _, ttl := range []string{"", "0", "21601", "x"} {
		if status, _ := token(one.ID, ttl); status != http.StatusBadRequest {
			t.Fatalf("ttl %q: http %d", ttl, status)
		}
	}
	resp, err := http.Get(base + "/latest/api/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET token: http %d", resp.StatusCode)
	}
}

// TestCloud_Metadata_SourceAddress checks the real service's rule: the
// caller is whoever owns the source address, among InUse ENIs.
func TestCloud_Metadata_SourceAddress(t *testing.T) {
	c, _, inst, client := newTestAPI(t, nil)
	eni := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) {
		r.SecondaryPrivateIpAddressCount = requests.NewInteger(1)
	})
	h := c.MetadataHandler()
	ask := func(remote string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/latest/meta-data/instance-id", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	if code, _ := ask("172.30.1.3:40000"); code != http.StatusForbidden {
		t.Fatalf("address of an unattached eni: http %d", code)
	}
	mustAttach(t, client, eni.NetworkInterfaceId, inst.ID)
	for _, tt := range []struct {
		remote string
		status int
		body   string
	}{
		{"172.30.1.1:40000", http.StatusOK, inst.ID},      // primary ENI
		{"172.30.1.3:40000", http.StatusOK, inst.ID},      // secondary IP of the attached ENI
		{"[::ffff:172.30.1.2]:1", http.StatusOK, inst.ID}, // v4-mapped
		{"172.30.1.99:40000", http.StatusForbidden, ""},
		{"127.0.0.1:40000", http.StatusForbidden, ""},
	} {
		t.Run(tt.remote, func(t *testing.T) {
			code, body := ask(tt.remote)
			if code != tt.status || (tt.body != "" && body != tt.body) {
				t.Fatalf("http %d %q", code, body)
			}
		})
	}
}
