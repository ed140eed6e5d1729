package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func mustClock(c *Cloud) *testClock {
	clock := &testClock{t: time.Now().Truncate(time.Second)}
	c.now = clock.Now
	return clock
}

// Ensure a nonce is remembered until its request's Timestamp leaves the
// window, not until 15 minutes after it arrived: a request dated 14
// minutes ahead must not be replayable 16 minutes after it was first seen.
func TestCloud_API_NonceWindow(t *testing.T) {
	c, _ := mustCloud(t, nil)
	clock := mustClock(c)
	host := mustServeAPI(t, c)
	t0 := clock.Now()
	dated := func(nonce string, ts time.Time) url.Values {
		p := signedParams("DescribeInstanceTypes", nonce)
		p.Set("Timestamp", ts.UTC().Format(timestampLayout))
		return p
	}
	ahead := dated("n-ahead", t0.Add(14*time.Minute))
	steps := []struct {
		name   string
		at     time.Duration // server clock, from t0
		params url.Values
		code   string
		status int
	}{
		{"dated 14m ahead is accepted", 0, ahead, "", 200},
		{"replayed at once", time.Minute, ahead, CodeSignatureNonceUsed, 400},
		{"replayed 16m after arrival, still within its timestamp window", 16 * time.Minute, ahead, CodeSignatureNonceUsed, 400},
		{"replayed 28m after arrival, still within its timestamp window", 28 * time.Minute, ahead, CodeSignatureNonceUsed, 400},
		{"replayed once its timestamp left the window", 30 * time.Minute, ahead, CodeTimestampExpired, 400},
		{"dated 16m ahead", 30 * time.Minute, dated("n-future", t0.Add(46*time.Minute)), CodeTimestampExpired, 400},
		{"dated 16m behind", 30 * time.Minute, dated("n-past", t0.Add(14*time.Minute)), CodeTimestampExpired, 400},
		{"dated 15m behind, on the edge", 30 * time.Minute, dated("n-edge", t0.Add(15*time.Minute)), "", 200},
		{"the old nonce is free again for a fresh request", 31 * time.Minute, dated("n-ahead", t0.Add(31*time.Minute)), "", 200},
	}
	for _, s := range steps {
		clock.Set(t0.Add(s.at))
		status, body := rawCall(t, host, http.MethodGet, s.params)
		if status != s.status || (s.code != "" && body["Code"] != s.code) {
			t.Fatalf("%s: http %d %v; want %d %s", s.name, status, body, s.status, s.code)
		}
	}
	c.mu.Lock()
	n := c.nonces.size()
	c.mu.Unlock()
	if n != 1 { // the reused n-ahead: the first one and n-edge left their windows, refused requests leave none
		t.Fatalf("%d nonces remembered, want 1", n)
	}
}

// roleCreds fetches the instance's RAM role credentials from metadata.
func roleCreds(tb testing.TB, base, instanceID string) stsAnswer {
	tb.Helper()
	status, role := mdGet(tb, base, instanceID, "/latest/meta-data/ram/security-credentials/", nil)
	if status != http.StatusOK {
		tb.Fatalf("role listing: http %d %s", status, role)
	}
	status, body := mdGet(tb, base, instanceID, "/latest/meta-data/ram/security-credentials/"+role, nil)
	if status != http.StatusOK {
		tb.Fatalf("role credentials: http %d %s", status, body)
	}
	var a stsAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		tb.Fatalf("role credentials %q: %v", body, err)
	}
	return a
}

func TestCloud_API_STSCredentials(t *testing.T) {
	c, _ := mustCloud(t, func(cfg *Config) {
		cfg.IdentifyCaller = identifyByHeader
		cfg.STSLifetime = time.Hour
	})
	clock := mustClock(c)
	inst := mustInstance(t, c, InstanceSpec{})
	md := mustServeMetadata(t, c)
	host := mustServeAPI(t, c)
	a := roleCreds(t, md, inst.ID)
	if a.Code != "Success" || len(a.AccessKeyID) < 10 || a.AccessKeyID[:4] != stsKeyPrefix || a.SecurityToken == "" || a.AccessKeySecret == "" {
		t.Fatalf("credentials %+v", a)
	}

	call := func(keyID, secret, token string) error {
		client, err := ecs.NewClientWithStsToken("cn-hangzhou", keyID, secret, token)
		if err != nil {
			t.Fatal(err)
		}
		client.Domain = host
		client.SetNoProxy("127.0.0.1")
		defer client.Shutdown()
		_, err = client.DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest())
		return err
	}
	if err := call(a.AccessKeyID, a.AccessKeySecret, a.SecurityToken); err != nil {
		t.Fatalf("valid sts credentials refused: %v", err)
	}
	// A long-term key without a token still works beside them.
	if _, err := mustECS(t, host, testKeyID, testSecret).DescribeInstanceTypes(ecs.CreateDescribeInstanceTypesRequest()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                 string
		keyID, secret, token string
		code                 string
		status               int
	}{
		{"no token", a.AccessKeyID, a.AccessKeySecret, "", CodeMissingSecurityToken, 400},
		{"token of another key", a.AccessKeyID, a.AccessKeySecret, "CAISnotthetoken", CodeSecurityTokenMismatch, 400},
		{"unknown sts key", "STS.unknownunknownunknown", a.AccessKeySecret, a.SecurityToken, CodeInvalidAccessKeyID, 404},
		{"wrong secret", a.AccessKeyID, "wrong", a.SecurityToken, CodeSignatureDoesNotMatch, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, call(tc.keyID, tc.secret, tc.token), tc.code, tc.status)
		})
	}

	// The service hands out the same credentials until half their life has
	// passed, then new ones; the old ones work until they expire. Requests
	// are signed by hand here, dated by the moved clock.
	stsCall := func(a stsAnswer, nonce string) (int, map[string]any) {
		p := signedParams("DescribeInstanceTypes", nonce)
		p.Set("AccessKeyId", a.AccessKeyID)
		p.Set("SecurityToken", a.SecurityToken)
		p.Set("Timestamp", clock.Now().UTC().Format(timestampLayout))
		return rawCallSigned(t, host, http.MethodPost, p, a.AccessKeySecret)
	}
	clock.Set(clock.Now().Add(20 * time.Minute))
	if again := roleCreds(t, md, inst.ID); again.AccessKeyID != a.AccessKeyID {
		t.Fatalf("rotated after 20 of 60 minutes")
	}
	clock.Set(clock.Now().Add(20 * time.Minute))
	rotated := roleCreds(t, md, inst.ID)
	if rotated.AccessKeyID == a.AccessKeyID {
		t.Fatal("not rotated after 40 of 60 minutes")
	}
	if status, body := stsCall(a, "n-old-valid"); status != 200 {
		t.Fatalf("old credentials refused before they expired: %d %v", status, body)
	}
	clock.Set(clock.Now().Add(21 * time.Minute))
	if status, body := stsCall(a, "n-old-expired"); status != 400 || body["Code"] != CodeSecurityTokenExpired {
		t.Fatalf("expired credentials: %d %v, want 400 %s", status, body, CodeSecurityTokenExpired)
	}
	if status, body := stsCall(rotated, "n-rotated"); status != 200 {
		t.Fatalf("rotated credentials refused: %d %v", status, body)
	}
	if s := c.Snapshot(); s.STSIssued != 2 {
		t.Fatalf("snapshot counts %d credentials issued, want 2", s.STSIssued)
	}
}

func TestCloud_Metadata_RAMRole(t *testing.T) {
	c, _ := mustCloud(t, func(cfg *Config) { cfg.IdentifyCaller = identifyByHeader })
	withRole := mustInstance(t, c, InstanceSpec{})
	named := mustInstance(t, c, InstanceSpec{RAMRole: "KubernetesWorkerRole"})
	none := mustInstance(t, c, InstanceSpec{RAMRole: NoRAMRole})
	md := mustServeMetadata(t, c)
	cases := []struct {
		instance, path string
		status         int
		want           string
	}{
		{withRole.ID, "/latest/meta-data/ram/security-credentials/", 200, DefaultRAMRoleName},
		{named.ID, "/latest/meta-data/ram/security-credentials/", 200, "KubernetesWorkerRole"},
		{named.ID, "/latest/meta-data/ram/", 200, "security-credentials/"},
		{named.ID, "/latest/meta-data/ram/security-credentials/" + DefaultRAMRoleName, 404, ""},
		{none.ID, "/latest/meta-data/ram/security-credentials/", 404, ""},
		{none.ID, "/latest/meta-data/ram/security-credentials/" + DefaultRAMRoleName, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.instance+tc.path, func(t *testing.T) {
			status, body := mdGet(t, md, tc.instance, tc.path, nil)
			if status != tc.status || (tc.want != "" && body != tc.want) {
				t.Fatalf("http %d %q; want %d %q", status, body, tc.status, tc.want)
			}
		})
	}
	if a, b := roleCreds(t, md, withRole.ID), roleCreds(t, md, named.ID); a.AccessKeyID == b.AccessKeyID {
		t.Fatal("two instances share one set of sts credentials")
	}
	if _, err := c.AddInstance(InstanceSpec{RAMRole: "bad/role"}); err == nil {
		t.Fatal("a role name with a slash was accepted")
	}
}
