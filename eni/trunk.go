package eni

import (
	"context"
	"fmt"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// Trunking is what a Client offers for ENI trunking, beyond creating a
// trunk (CreateENIOptions.Trunk) and describing members (ENI.TrunkID,
// ENI.DeviceIndex). A member is a Secondary ENI attached through the
// instance's trunk; Describe then calls it TypeMember, and its
// DeviceIndex is its VLAN ID on the trunk.
type Trunking interface {
	// AttachMember starts attaching eniID to instanceID through trunk
	// trunkID (AttachNetworkInterface with TrunkNetworkInstanceId).
	// Attachment is asynchronous: poll ENIs until the status is InUse.
	//
	// May return an error wrapping ErrNotFound, ErrInvalidState,
	// ErrQuotaExceeded (the type's member ENIs are all used) or
	// ErrInvalidParameter (a type without trunking, a trunk not in use).
	AttachMember(ctx context.Context, eniID, instanceID, trunkID string) error

	// DetachMember starts detaching member eniID from its trunk
	// (DetachNetworkInterface with TrunkNetworkInstanceId).
	DetachMember(ctx context.Context, eniID, instanceID, trunkID string) error
}

// AttachMember attaches a member through the trunk.
func (c *AlibabaClient) AttachMember(ctx context.Context, eniID, instanceID, trunkID string) error {
	req := ecs.CreateAttachNetworkInterfaceRequest()
	req.NetworkInterfaceId = eniID
	req.InstanceId = instanceID
	req.TrunkNetworkInstanceId = trunkID
	if err := c.do(ctx, req, ecs.CreateAttachNetworkInterfaceResponse()); err != nil {
		return fmt.Errorf("attach member eni %s to %s through trunk %s: %w", eniID, instanceID, trunkID, err)
	}
	return nil
}

// DetachMember detaches a member from its trunk.
func (c *AlibabaClient) DetachMember(ctx context.Context, eniID, instanceID, trunkID string) error {
	req := ecs.CreateDetachNetworkInterfaceRequest()
	req.NetworkInterfaceId = eniID
	req.InstanceId = instanceID
	req.TrunkNetworkInstanceId = trunkID
	if err := c.do(ctx, req, ecs.CreateDetachNetworkInterfaceResponse()); err != nil {
		return fmt.Errorf("detach member eni %s from trunk %s: %w", eniID, trunkID, err)
	}
	return nil
}
