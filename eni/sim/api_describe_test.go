package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
)

func eniIDs(resp *ecs.DescribeNetworkInterfacesResponse) []string {
	var out []string
	for _, s := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
		out = append(out, s.NetworkInterfaceId)
	}
	return out
}

func TestCloud_DescribeNetworkInterfaces_Paging(t *testing.T) {
	_, _, inst, client := newTestAPI(t, nil)
	all := []string{inst.PrimaryENIID}
	for range 24 {
		all = append(all, mustCreateENI(t, client, nil).NetworkInterfaceId)
	}

	t.Run("page number", func(t *testing.T) {
		var got []string
		for n := 1; ; n++ {
			resp := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) {
				r.PageNumber = requests.NewInteger(n)
				r.PageSize = requests.NewInteger(10)
			})
			if resp.TotalCount != 25 || resp.PageNumber != n || resp.PageSize != 10 {
				t.Fatalf("page %d: total %d number %d size %d", n, resp.TotalCount, resp.PageNumber, resp.PageSize)
			}
			if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) == 0 {
				break
			}
			got = append(got, eniIDs(resp)...)
		}
		if !slices.Equal(got, all) {
			t.Fatalf("paged %d enis, want %d in creation order", len(got), len(all))
		}
	})
	t.Run("default page size", func(t *testing.T) {
		if n := len(describeENIs(t, client, nil).NetworkInterfaceSets.NetworkInterfaceSet); n != 10 {
			t.Fatalf("%d items", n)
		}
	})
	t.Run("next token", func(t *testing.T) {
		var got []string
		token, pages := "", 0
		for {
			resp := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) {
				r.MaxResults = requests.NewInteger(7)
				r.NextToken = token
			})
			got = append(got, eniIDs(resp)...)
			pages++
			if resp.NextToken == "" {
				break
			}
			token = resp.NextToken
		}
		if pages != 4 || !slices.Equal(got, all) {
			t.Fatalf("%d pages, %d enis", pages, len(got))
		}
	})
	t.Run("limits", func(t *testing.T) {
		for _, mutate := range []func(*ecs.DescribeNetworkInterfacesRequest){
			func(r *ecs.DescribeNetworkInterfacesRequest) { r.PageSize = requests.NewInteger(501) },
			func(r *ecs.DescribeNetworkInterfacesRequest) { r.MaxResults = requests.NewInteger(501) },
			func(r *ecs.DescribeNetworkInterfacesRequest) { r.NextToken = "garbage" },
		} {
			req := ecs.CreateDescribeNetworkInterfacesRequest()
			mutate(req)
			_, err := client.DescribeNetworkInterfaces(req)
			wantCode(t, err, CodeInvalidParameter, 400)
		}
	})
}

func TestCloud_DescribeNetworkInterfaces_Filters(t *testing.T) {
	_, _, inst, client := newTestAPI(t, nil)
	tagged := func(tags ...ecs.CreateNetworkInterfaceTag) string {
		return mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.Tag = &tags }).NetworkInterfaceId
	}
	veniA := tagged(ecs.CreateNetworkInterfaceTag{Key: "creator", Value: "veni"}, ecs.CreateNetworkInterfaceTag{Key: "node", Value: "a"})
	veniB := tagged(ecs.CreateNetworkInterfaceTag{Key: "creator", Value: "veni"}, ecs.CreateNetworkInterfaceTag{Key: "node", Value: "b"})
	terway := tagged(ecs.CreateNetworkInterfaceTag{Key: "creator", Value: "terway"})
	onB := mustCreateENI(t, client, func(r *ecs.CreateNetworkInterfaceRequest) { r.VSwitchId = "vsw-sim-b" }).NetworkInterfaceId
	mustAttach(t, client, veniA, inst.ID)

	tests := []struct {
		name   string
		mutate func(*ecs.DescribeNetworkInterfacesRequest)
		want   []string
	}{
		{"one tag", func(r *ecs.DescribeNetworkInterfacesRequest) {
			r.Tag = &[]ecs.DescribeNetworkInterfacesTag{{Key: "creator", Value: "veni"}}
		}, []string{veniA, veniB}},
		{"two tags", func(r *ecs.DescribeNetworkInterfacesRequest) {
			r.Tag = &[]ecs.DescribeNetworkInterfacesTag{{Key: "creator", Value: "veni"}, {Key: "node", Value: "b"}}
		}, []string{veniB}},
		{"tag key only", func(r *ecs.DescribeNetworkInterfacesRequest) {
			r.Tag = &[]ecs.DescribeNetworkInterfacesTag{{Key: "creator"}}
		}, []string{veniA, veniB, terway}},
		{"instance", func(r *ecs.DescribeNetworkInterfacesRequest) { r.InstanceId = inst.ID }, []string{inst.PrimaryENIID, veniA}},
		{"status", func(r *ecs.DescribeNetworkInterfacesRequest) { r.Status = "InUse" }, []string{inst.PrimaryENIID, veniA}},
		{"type", func(r *ecs.DescribeNetworkInterfacesRequest) { r.Type = "Primary" }, []string{inst.PrimaryENIID}},
		{"vswitch", func(r *ecs.DescribeNetworkInterfacesRequest) { r.VSwitchId = "vsw-sim-b" }, []string{onB}},
		{"ids", func(r *ecs.DescribeNetworkInterfacesRequest) {
			r.NetworkInterfaceId = &[]string{terway, onB, "eni-nope"}
		}, []string{terway, onB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) {
				r.PageSize = requests.NewInteger(100)
				tt.mutate(r)
			})
			if got := eniIDs(resp); !slices.Equal(got, tt.want) || resp.TotalCount != len(tt.want) {
				t.Fatalf("got %v (total %d), want %v", got, resp.TotalCount, tt.want)
			}
		})
	}
}

func TestCloud_Describe_Lag(t *testing.T) {
	const lag = 300 * time.Millisecond
	c, _, _, client := newTestAPI(t, func(cfg *Config) { cfg.DescribeLag = lag })
	vpcClient := mustVPC(t, mustServeAPI(t, c))
	freeNow := func() int64 {
		req := vpc.CreateDescribeVSwitchesRequest()
		req.VSwitchId = "vsw-sim-a"
		resp, err := vpcClient.DescribeVSwitches(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.VSwitches.VSwitch[0].AvailableIpAddressCount
	}
	// Wait out the lag so the instance's own ENI is visible first.
	time.Sleep(lag)
	before := freeNow()
	created := time.Now()
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	ids := func() []string {
		return eniIDs(describeENIs(t, client, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{id} }))
	}
	if got := ids(); len(got) != 0 {
		t.Fatalf("new eni visible at once: %v", got)
	}
	if free := freeNow(); free != before {
		t.Fatalf("free count moved at once: %d → %d", before, free)
	}
	if time.Since(created) >= lag {
		t.Skip("machine too slow to observe the lag window")
	}
	time.Sleep(lag - time.Since(created) + 20*time.Millisecond)
	if got := ids(); !slices.Equal(got, []string{id}) {
		t.Fatalf("eni not visible after the lag: %v", got)
	}
	if free := freeNow(); free != before-1 {
		t.Fatalf("free count after the lag %d, want %d", free, before-1)
	}
	if live := c.Snapshot(); len(live.ENIs) != 2 {
		t.Fatalf("snapshot is live, want 2 enis: %d", len(live.ENIs))
	}
}

func TestCloud_DescribeInstanceTypes(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	tests := []struct {
		name string
		ask  []string
		want []string
	}{
		{"all", nil, []string{"ecs.g7.large", "ecs.g7.xlarge", "ecs.g7.2xlarge", "ecs.g7.4xlarge", "ecs.c7.large",
			"ecs.c7.xlarge", "ecs.g6.large", "ecs.g6.xlarge", "ecs.g6.2xlarge", "ecs.sim.tiny"}},
		{"some", []string{"ecs.sim.tiny", "ecs.g7.large", "ecs.nope"}, []string{"ecs.g7.large", "ecs.sim.tiny"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ecs.CreateDescribeInstanceTypesRequest()
			if tt.ask != nil {
				req.InstanceTypes = &tt.ask
			}
			resp, err := client.DescribeInstanceTypes(req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range resp.InstanceTypes.InstanceType {
				got = append(got, it.InstanceTypeId)
				if it.InstanceTypeId == "ecs.g7.large" && (it.EniQuantity != 3 || it.EniPrivateIpAddressQuantity != 6 ||
					it.EniIpv6AddressQuantity != 6 || !it.EniTrunkSupported || it.EniTotalQuantity != 9 || it.InstanceTypeFamily != "ecs.g7") {
					t.Fatalf("g7.large %+v", it)
				}
				if it.InstanceTypeId == "ecs.sim.tiny" && (it.EniQuantity != 2 || it.EniPrivateIpAddressQuantity != 3 || it.EniTotalQuantity != 2) {
					t.Fatalf("tiny %+v", it)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCloud_DescribeVSwitches_BothProducts(t *testing.T) {
	c, _, _, client := newTestAPI(t, nil) // the instance holds one address of vsw-sim-a
	vpcClient := mustVPC(t, mustServeAPI(t, c))

	ecsReq := ecs.CreateDescribeVSwitchesRequest()
	ecsReq.VpcId = "vpc-sim-main"
	ecsResp, err := client.DescribeVSwitches(ecsReq)
	if err != nil {
		t.Fatal(err)
	}
	vpcReq := vpc.CreateDescribeVSwitchesRequest()
	vpcReq.VpcId = "vpc-sim-main"
	vpcReq.PageSize = requests.NewInteger(1)
	vpcReq.PageNumber = requests.NewInteger(2)
	vpcResp, err := vpcClient.DescribeVSwitches(vpcReq)
	if err != nil {
		t.Fatal(err)
	}
	if ecsResp.TotalCount != 2 || len(ecsResp.VSwitches.VSwitch) != 2 {
		t.Fatalf("ecs: %+v", ecsResp.VSwitches)
	}
	a := ecsResp.VSwitches.VSwitch[0]
	if a.VSwitchId != "vsw-sim-a" || a.CidrBlock != "172.30.1.0/24" || a.AvailableIpAddressCount != 251 ||
		a.ZoneId != "cn-hangzhou-h" || a.Status != "Available" || a.VpcId != "vpc-sim-main" {
		t.Fatalf("vsw-sim-a %+v", a)
	}
	if vpcResp.TotalCount != 2 || len(vpcResp.VSwitches.VSwitch) != 1 || vpcResp.VSwitches.VSwitch[0].VSwitchId != "vsw-sim-b" ||
		vpcResp.VSwitches.VSwitch[0].AvailableIpAddressCount != 252 {
		t.Fatalf("vpc page 2: %+v", vpcResp)
	}
	vpcReq = vpc.CreateDescribeVSwitchesRequest()
	vpcReq.VpcId = "vpc-nope"
	_, err = vpcClient.DescribeVSwitches(vpcReq)
	wantCode(t, err, "InvalidVpcId.NotFound", 404)
}
