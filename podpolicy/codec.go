package podpolicy

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

func marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Records hold rulesets in gob, not JSON: a ruleset of the bench
// world (1,000 rules) is 471 KB of JSON that takes 36 ms to decode, and an
// ADD that installs it reads it; gob is a third of the size and five times
// faster. A fresh encoder per ruleset makes the bytes (and the digest) a
// function of the ruleset alone.
func encodeRuleset(rs *policy.Ruleset) ([]byte, string, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(rs); err != nil {
		return nil, "", fmt.Errorf("encode ruleset of %s: %w", rs.Pod, err)
	}
	b := buf.Bytes()
	return b, store.PolicyDigest(b), nil
}

// DecodeRecord returns a record's ruleset.
func DecodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) { return decodeRecord(r) }

// decodeRecord returns a record's ruleset.
func decodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) {
	rs := new(policy.Ruleset)
	if err := gob.NewDecoder(bytes.NewReader(r.Ruleset)).Decode(rs); err != nil {
		return nil, fmt.Errorf("policy record of %s: %w (the daemon rewrites it on its next pass)", store.PodKey(r.Namespace, r.Name), err)
	}
	return rs, nil
}

func isolated(rs *policy.Ruleset) bool { return rs.Ingress.Isolated || rs.Egress.Isolated }
