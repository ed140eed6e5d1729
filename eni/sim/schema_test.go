package sim

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// Ensure every action refuses a parameter it does not model, naming it.
func TestCloud_API_UnknownParamRefused(t *testing.T) {
	_, _, _, client := newTestAPI(t, nil)
	for name, act := range actions {
		t.Run(name, func(t *testing.T) {
			req := requests.NewCommonRequest()
			req.Scheme = "http"
			req.Domain = client.Domain
			req.Version = act.versions[0]
			req.ApiName = name
			req.QueryParams["NotModeledParam"] = "1"
			_, err := client.ProcessCommonRequest(req)
			wantCode(t, err, CodeInvalidParameter, http.StatusBadRequest)
			if !strings.Contains(err.Error(), "NotModeledParam") {
				t.Fatalf("error does not name the parameter: %v", err)
			}
		})
	}
}

// Ensure parameters the SDK's typed requests offer but the sim does not
// model are refused rather than ignored.
func TestCloud_API_UnmodeledSDKFieldRefused(t *testing.T) {
	_, _, inst, client := newTestAPI(t, nil)
	id := mustCreateENI(t, client, nil).NetworkInterfaceId
	tests := []struct {
		name, param string
		call        func() error
	}{
		{"attach to a network card", "NetworkCardIndex", func() error {
			req := ecs.CreateAttachNetworkInterfaceRequest()
			req.NetworkInterfaceId, req.InstanceId = id, inst.ID
			req.NetworkCardIndex = requests.NewInteger(1)
			_, err := client.AttachNetworkInterface(req)
			return err
		}},
		{"create with queue number", "QueueNumber", func() error {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
			req.QueueNumber = requests.NewInteger(4)
			_, err := client.CreateNetworkInterface(req)
			return err
		}},
		{"describe by owner", "OwnerId", func() error {
			req := ecs.CreateDescribeNetworkInterfacesRequest()
			req.OwnerId = requests.NewInteger(42)
			_, err := client.DescribeNetworkInterfaces(req)
			return err
		}},
		{"delete by resource owner", "ResourceOwnerAccount", func() error {
			req := ecs.CreateDeleteNetworkInterfaceRequest()
			req.NetworkInterfaceId = id
			req.ResourceOwnerAccount = "someone"
			_, err := client.DeleteNetworkInterface(req)
			return err
		}},
		{"assign ipv6 by owner", "OwnerId", func() error {
			req := ecs.CreateAssignIpv6AddressesRequest()
			req.NetworkInterfaceId = id
			req.Ipv6PrefixCount = requests.NewInteger(1)
			req.OwnerId = requests.NewInteger(42)
			_, err := client.AssignIpv6Addresses(req)
			return err
		}},
		{"create with named ipv6 prefixes", "Ipv6Prefix.1", func() error {
			req := ecs.CreateCreateNetworkInterfaceRequest()
			req.VSwitchId, req.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
			req.Ipv6Prefix = &[]string{"fd00:ac1e:1:0:60::/80"}
			_, err := client.CreateNetworkInterface(req)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, CodeInvalidParameter, http.StatusBadRequest)
			if !strings.Contains(err.Error(), tt.param) {
				t.Fatalf("error does not name %s: %v", tt.param, err)
			}
		})
	}
}

func TestMatchParam(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"PrivateIpAddress.N", "PrivateIpAddress.1", true},
		{"PrivateIpAddress.N", "PrivateIpAddress.12", true},
		{"PrivateIpAddress.N", "PrivateIpAddress", false},
		{"PrivateIpAddress.N", "PrivateIpAddress.0", false},
		{"PrivateIpAddress.N", "PrivateIpAddress.01", false},
		{"PrivateIpAddress.N", "PrivateIpAddress.x", false},
		{"Tag.N.Key", "Tag.3.Key", true},
		{"Tag.N.Key", "Tag.3.Value", false},
		{"VSwitchId", "VSwitchId", true},
		{"VSwitchId", "VSwitchIds", false},
	}
	for _, tt := range tests {
		if got := matchParam(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchParam(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}
