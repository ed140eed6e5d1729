package sim

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

const (
	testKeyID  = "LTAIsimtestkey"
	testSecret = "sim-test-secret"
)

// fabricCall is one call the recording fabric saw.
type fabricCall struct {
	Op         string // "attach", "detach", "addresses", "attach-member", "detach-member"
	InstanceID string
	ENIID      string
	Link       ENILink      // attach only
	Member     MemberLink   // attach-member; detach-member sets TrunkID only
	IPs        []netip.Addr // addresses and attach-member
}

func (f fabricCall) String() string {
	return fmt.Sprintf("%s %s/%s idx=%d ips=%v", f.Op, f.InstanceID, f.ENIID, f.Link.DeviceIndex, f.IPs)
}

// recordingFabric records every Fabric call and can be told to fail.
type recordingFabric struct {
	mu    sync.Mutex
	calls []fabricCall
	fail  error // returned (and cleared) by the next call
}

func (f *recordingFabric) record(c fabricCall) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	err := f.fail
	f.fail = nil
	return err
}

func (f *recordingFabric) AttachENI(link ENILink) error {
	return f.record(fabricCall{Op: "attach", InstanceID: link.InstanceID, ENIID: link.ENIID, Link: link})
}

func (f *recordingFabric) DetachENI(instanceID, eniID string) error {
	return f.record(fabricCall{Op: "detach", InstanceID: instanceID, ENIID: eniID})
}

func (f *recordingFabric) SetENIAddresses(instanceID, eniID string, ips []netip.Addr) error {
	return f.record(fabricCall{Op: "addresses", InstanceID: instanceID, ENIID: eniID, IPs: slices.Clone(ips)})
}

func (f *recordingFabric) AttachMember(m MemberLink) error {
	return f.record(fabricCall{Op: "attach-member", InstanceID: m.InstanceID, ENIID: m.ENIID, Member: m, IPs: slices.Clone(m.IPs)})
}

func (f *recordingFabric) DetachMember(instanceID, trunkID, memberID string) error {
	return f.record(fabricCall{Op: "detach-member", InstanceID: instanceID, ENIID: memberID, Member: MemberLink{TrunkID: trunkID}})
}

func (f *recordingFabric) Calls() []fabricCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *recordingFabric) failNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// mustCloud builds a Cloud from DefaultConfig with fast timers, test
// credentials and a recording fabric; mutate adjusts the config first.
func mustCloud(tb testing.TB, mutate func(*Config)) (*Cloud, *recordingFabric) {
	tb.Helper()
	rec := &recordingFabric{}
	cfg := DefaultConfig()
	cfg.AttachDelay = 30 * time.Millisecond
	cfg.DetachDelay = 20 * time.Millisecond
	cfg.Credentials = map[string]string{testKeyID: testSecret}
	cfg.Fabric = rec
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("new cloud: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c, rec
}

func mustInstance(tb testing.TB, c *Cloud, spec InstanceSpec) Instance {
	tb.Helper()
	inst, err := c.AddInstance(spec)
	if err != nil {
		tb.Fatalf("add instance: %v", err)
	}
	return inst
}

// mustServeAPI serves the cloud's OpenAPI on loopback and returns its host.
func mustServeAPI(tb testing.TB, c *Cloud) string {
	tb.Helper()
	srv := httptest.NewServer(c.APIHandler())
	tb.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Host
}

// mustECS returns the unchanged SDK's ECS client pointed at host. NoProxy
// pins loopback so a proxy in the environment can never carry test traffic.
func mustECS(tb testing.TB, host, keyID, secret string) *ecs.Client {
	tb.Helper()
	client, err := ecs.NewClientWithAccessKey("cn-hangzhou", keyID, secret)
	if err != nil {
		tb.Fatalf("ecs client: %v", err)
	}
	client.Domain = host
	client.SetNoProxy("127.0.0.1")
	tb.Cleanup(client.Shutdown)
	return client
}

func mustVPC(tb testing.TB, host string) *vpc.Client {
	tb.Helper()
	client, err := vpc.NewClientWithAccessKey("cn-hangzhou", testKeyID, testSecret)
	if err != nil {
		tb.Fatalf("vpc client: %v", err)
	}
	client.Domain = host
	client.SetNoProxy("127.0.0.1")
	tb.Cleanup(client.Shutdown)
	return client
}

// newTestAPI is the usual setup: a cloud, one ecs.g7.large instance, the
// API on loopback and an ECS client with valid credentials.
func newTestAPI(tb testing.TB, mutate func(*Config)) (*Cloud, *recordingFabric, Instance, *ecs.Client) {
	tb.Helper()
	c, rec := mustCloud(tb, mutate)
	inst := mustInstance(tb, c, InstanceSpec{Type: "ecs.g7.large"})
	return c, rec, inst, mustECS(tb, mustServeAPI(tb, c), testKeyID, testSecret)
}

// codeOf returns the OpenAPI error code and HTTP status of an SDK error.
func codeOf(err error) (string, int) {
	var se sdkerrors.Error
	if errors.As(err, &se) {
		return se.ErrorCode(), se.HttpStatus()
	}
	return "", 0
}

func wantCode(tb testing.TB, err error, code string, status int) {
	tb.Helper()
	gotCode, gotStatus := codeOf(err)
	if gotCode != code || gotStatus != status {
		tb.Fatalf("error = %v; want code %s http %d, got %q http %d", err, code, status, gotCode, gotStatus)
	}
}

func mustCreateENI(tb testing.TB, client *ecs.Client, mutate func(*ecs.CreateNetworkInterfaceRequest)) *ecs.CreateNetworkInterfaceResponse {
	tb.Helper()
	req := ecs.CreateCreateNetworkInterfaceRequest()
	req.VSwitchId = "vsw-sim-a"
	req.SecurityGroupId = DefaultSecurityGroupID
	if mutate != nil {
		mutate(req)
	}
	resp, err := client.CreateNetworkInterface(req)
	if err != nil {
		tb.Fatalf("create eni: %v", err)
	}
	return resp
}

func describeENIs(tb testing.TB, client *ecs.Client, mutate func(*ecs.DescribeNetworkInterfacesRequest)) *ecs.DescribeNetworkInterfacesResponse {
	tb.Helper()
	req := ecs.CreateDescribeNetworkInterfacesRequest()
	if mutate != nil {
		mutate(req)
	}
	resp, err := client.DescribeNetworkInterfaces(req)
	if err != nil {
		tb.Fatalf("describe enis: %v", err)
	}
	return resp
}

func eniStatus(tb testing.TB, client *ecs.Client, id string) string {
	tb.Helper()
	resp := describeENIs(tb, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} })
	if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) != 1 {
		return ""
	}
	return resp.NetworkInterfaceSets.NetworkInterfaceSet[0].Status
}

// waitStatus polls Describe until the ENI has status, failing after 3s.
func waitStatus(tb testing.TB, client *ecs.Client, id, status string) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := eniStatus(tb, client, id)
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("eni %s: status %q, want %q", id, got, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustAttach(tb testing.TB, client *ecs.Client, eniID, instanceID string) {
	tb.Helper()
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId, req.InstanceId = eniID, instanceID
	if _, err := client.AttachNetworkInterface(req); err != nil {
		tb.Fatalf("attach %s to %s: %v", eniID, instanceID, err)
	}
	waitStatus(tb, client, eniID, "InUse")
}
