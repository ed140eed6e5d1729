package eni

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
)

// Tagging is what a Client offers to change an ENI's tags after its
// creation (CreateENIOptions.Tags sets the first ones).
type Tagging interface {
	// TagENI adds tags to eniID, replacing the values of keys it has
	// already (ECS TagResources, ResourceType eni).
	//
	// May return an error wrapping ErrNotFound or ErrInvalidParameter.
	TagENI(ctx context.Context, eniID string, tags map[string]string) error
}

// TagENI tags one ENI.
func (c *AlibabaClient) TagENI(ctx context.Context, eniID string, tags map[string]string) error {
	req := ecs.CreateTagResourcesRequest()
	req.ResourceType = "eni"
	ids := []string{eniID}
	req.ResourceId = &ids
	list := make([]ecs.TagResourcesTag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		list = append(list, ecs.TagResourcesTag{Key: k, Value: tags[k]})
	}
	req.Tag = &list
	if err := c.do(ctx, req, ecs.CreateTagResourcesResponse()); err != nil {
		return fmt.Errorf("tag eni %s: %w", eniID, err)
	}
	return nil
}
