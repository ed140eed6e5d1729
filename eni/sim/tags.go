package sim

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Tags, as ECS limits them: a key and a value of at most 128 characters,
// a key not empty and neither starting with "aliyun" or "acs:" nor, like
// a value, holding "http://" or "https://"; at most 20 tags on one
// resource.
const (
	maxTagLen      = 128
	maxTagsPerENI  = 20
	maxTagResource = 50 // ResourceId.N of one TagResources call
)

// Error codes of tagging.
const (
	CodeTagKeyMalformed     = "InvalidTagKey.Malformed"
	CodeTagValueMalformed   = "InvalidTagValue.Malformed"
	CodeTagQuotaExceeded    = "OperationDenied.QuotaExceed"
	CodeResourceNotFound    = "InvalidResourceId.NotFound"
	CodeResourceTypeUnknown = "InvalidResourceType.NotFound"
)

// checkTag refuses a tag ECS would not store.
func checkTag(t tag) *apiError {
	lk := strings.ToLower(t.Key)
	switch {
	case len(t.Key) > maxTagLen, strings.HasPrefix(lk, "aliyun"), strings.HasPrefix(lk, "acs:"),
		strings.Contains(lk, "http://"), strings.Contains(lk, "https://"):
		return newAPIError(http.StatusBadRequest, CodeTagKeyMalformed, "The specified Tag.n.Key %q is not valid.", t.Key)
	case len(t.Value) > maxTagLen, strings.Contains(strings.ToLower(t.Value), "http://"), strings.Contains(strings.ToLower(t.Value), "https://"):
		return newAPIError(http.StatusBadRequest, CodeTagValueMalformed, "The specified Tag.n.Value %q of key %q is not valid.", t.Value, t.Key)
	}
	return nil
}

// apiTagResources is ECS TagResources for ENIs (ResourceType eni): each
// tag is added to every ENI named, a key the ENI has already takes the
// new value. All or nothing: an unknown ENI or a tag too many for one of
// them changes none.
func (c *Cloud) apiTagResources(q *request) (response, *apiError) {
	switch rt := q.get("ResourceType"); rt {
	case "":
		return nil, errMissing("ResourceType")
	case "eni":
	default:
		// The sim keeps no other taggable resource.
		return nil, newAPIError(http.StatusNotFound, CodeResourceTypeUnknown, "The specified ResourceType %q is not found (the sim tags eni).", rt)
	}
	ids := q.list("ResourceId")
	switch {
	case len(ids) == 0:
		return nil, errMissing("ResourceId.1")
	case len(ids) > maxTagResource:
		return nil, errInvalid("ResourceId.N", "more than 50 resources")
	}
	tags, aerr := q.tags()
	if aerr != nil {
		return nil, aerr
	}
	if len(tags) == 0 {
		return nil, errMissing("Tag.1.Key")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		e, ok := c.enis[id]
		if !ok {
			return nil, newAPIError(http.StatusNotFound, CodeResourceNotFound, "The specified ResourceIds are not found in our records: %s.", id)
		}
		if n := len(merged(e.tags, tags)); n > maxTagsPerENI {
			return nil, newAPIError(http.StatusBadRequest, CodeTagQuotaExceeded, "ENI %s would have %d tags; at most %d.", id, n, maxTagsPerENI)
		}
	}
	now := time.Now()
	for _, id := range ids {
		e := c.enis[id]
		e.tags = merged(e.tags, tags)
		c.hist.recordENI(now, e.id, e)
	}
	return &emptyResponse{}, nil
}

// merged is have with add's tags set, in have's order then add's.
func merged(have, add []tag) []tag {
	out := slices.Clone(have)
	for _, t := range add {
		if i := slices.IndexFunc(out, func(o tag) bool { return o.Key == t.Key }); i >= 0 {
			out[i].Value = t.Value
		} else {
			out = append(out, t)
		}
	}
	return out
}
