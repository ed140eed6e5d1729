package sim

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// TestCloud_Concurrent drives several nodes at once through the SDK and
// checks the invariants the rest of veni relies on: no address is handed
// out twice, the free counts add up, and for every ENI the fabric saw the
// attach before any address change.
func TestCloud_Concurrent(t *testing.T) {
	c, rec := mustCloud(t, nil)
	host := mustServeAPI(t, c)
	const nodes = 6
	var insts []Instance
	var clients []*ecs.Client
	for range nodes {
		insts = append(insts, mustInstance(t, c, InstanceSpec{Type: "ecs.g7.xlarge"}))
		// One SDK client per goroutine: sdk.Client itself races on its
		// timeout fields when shared (alibaba-cloud-sdk-go v1.63.107,
		// sdk/client.go setTimeout).
		clients = append(clients, mustECS(t, host, testKeyID, testSecret))
	}
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for i, inst := range insts {
		wg.Go(func() {
			if err := growNode(clients[i], inst.ID); err != nil {
				errs <- fmt.Errorf("node %s: %w", inst.ID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	s := c.Snapshot()
	seen := map[string]string{}
	used := 0
	for _, e := range s.ENIs {
		for _, ip := range e.IPs {
			if other, dup := seen[ip.String()]; dup {
				t.Fatalf("%s on %s and %s", ip, other, e.ID)
			}
			seen[ip.String()] = e.ID
			used++
		}
	}
	// 6 primaries + 12 ENIs × (3 + 9) addresses.
	if used != nodes+nodes*2*12 || s.VSwitches[0].Free != s.VSwitches[0].Total-used {
		t.Fatalf("used %d, free %d of %d", used, s.VSwitches[0].Free, s.VSwitches[0].Total)
	}
	attached := map[string]bool{}
	for _, call := range rec.Calls() {
		switch call.Op {
		case "attach":
			attached[call.ENIID] = true
		case "addresses":
			if !attached[call.ENIID] {
				t.Fatalf("addresses of %s before its attach", call.ENIID)
			}
		}
	}
}

// growNode creates, attaches and fills two ENIs for an instance, the way a
// node daemon would; it runs on its own goroutine, so it returns errors.
func growNode(client *ecs.Client, instanceID string) error {
	for range 2 {
		create := ecs.CreateCreateNetworkInterfaceRequest()
		create.VSwitchId, create.SecurityGroupId = "vsw-sim-a", DefaultSecurityGroupID
		create.SecondaryPrivateIpAddressCount = requests.NewInteger(2)
		created, err := client.CreateNetworkInterface(create)
		if err != nil {
			return err
		}
		id := created.NetworkInterfaceId
		attach := ecs.CreateAttachNetworkInterfaceRequest()
		attach.NetworkInterfaceId, attach.InstanceId = id, instanceID
		if _, err := client.AttachNetworkInterface(attach); err != nil {
			return err
		}
		for deadline := time.Now().Add(3 * time.Second); ; {
			d := ecs.CreateDescribeNetworkInterfacesRequest()
			d.NetworkInterfaceId = &[]string{id}
			resp, err := client.DescribeNetworkInterfaces(d)
			if err != nil {
				return err
			}
			if set := resp.NetworkInterfaceSets.NetworkInterfaceSet; len(set) == 1 && set[0].Status == "InUse" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("eni %s never InUse", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for range 3 {
			assign := ecs.CreateAssignPrivateIpAddressesRequest()
			assign.NetworkInterfaceId = id
			assign.SecondaryPrivateIpAddressCount = requests.NewInteger(3)
			if _, err := client.AssignPrivateIpAddresses(assign); err != nil {
				return err
			}
		}
	}
	return nil
}
