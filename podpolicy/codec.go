package podpolicy

import (
	"encoding/json"
	"fmt"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

func marshal(v any) ([]byte, error) { return json.Marshal(v) }

// encodeRuleset returns rs's JSON and digest.
func encodeRuleset(rs *policy.Ruleset) ([]byte, string, error) {
	b, err := json.Marshal(rs)
	if err != nil {
		return nil, "", fmt.Errorf("encode ruleset of %s: %w", rs.Pod, err)
	}
	return b, store.PolicyDigest(b), nil
}

// decodeRecord returns a record's ruleset.
func decodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) {
	rs := new(policy.Ruleset)
	if err := json.Unmarshal(r.Ruleset, rs); err != nil {
		return nil, fmt.Errorf("policy record of %s: %w (the daemon rewrites it on its next pass)", store.PodKey(r.Namespace, r.Name), err)
	}
	return rs, nil
}
