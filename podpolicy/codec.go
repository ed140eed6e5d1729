package podpolicy

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/veni-cni/veni/policy"
	"github.com/veni-cni/veni/store"
)

func marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Records hold rulesets in gob, not JSON: a ruleset of the bench
// world (1,000 rules) is 471 KB of JSON that takes 36 ms to decode, and
// gob is a third of the size and five times faster. A ruleset is three gob
// values, each from a fresh encoder and framed by its length: the pod's
// own part (the ruleset without its directions), its ingress and its
// egress. The record holds the pod's own frame and the digests of its
// directions' frames; the frames themselves are the record's parts
// (store.PolicyRecord.Parts), stored once for every pod that has them:
// pods that policies select alike (CompileAllKeyed's keys) have equal
// directions, which a daemon's pass encodes once (passEncoder) and the
// store holds once. The bytes (and the digest) are a function of the
// ruleset alone.
const rulesetMagic = "VRS3"

// rulesetMagicV2 is the encoding before parts: the three frames inline.
// Records of an older daemon are still read.
const rulesetMagicV2 = "VRS2"

// partDigestLen is the length of a part's digest (store.PolicyDigest).
const partDigestLen = 32

// rulesetHead is a ruleset without its directions.
type rulesetHead struct {
	Pod         policy.PodRef
	IPs         []netip.Addr
	Node        string
	HostNetwork bool
}

// gobFrame encodes v with a fresh encoder, framed by its length.
func gobFrame(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(b)-4))
	return b, nil
}

func headOf(rs *policy.Ruleset) rulesetHead {
	return rulesetHead{Pod: rs.Pod, IPs: rs.IPs, Node: rs.Node, HostNetwork: rs.HostNetwork}
}

// joinRuleset assembles a ruleset's bytes from its own frame and its
// directions' digests.
func joinRuleset(head []byte, in, eg string) ([]byte, string) {
	b := make([]byte, 0, len(rulesetMagic)+len(head)+2*partDigestLen)
	b = append(b, rulesetMagic...)
	b = append(append(append(b, head...), in...), eg...)
	return b, store.PolicyDigest(b)
}

// encodeRuleset returns rs's encoding: a pass of one pod.
func encodeRuleset(rs *policy.Ruleset) (encodedPod, error) {
	return newPassEncoder(nil).encode(policy.Compiled{Ruleset: rs, IngressKey: "in", EgressKey: "eg"})
}

// passEncoder encodes the rulesets of one pass, each direction key once,
// and reuses the last pass's bytes and digest of a pod whose three frames
// did not change: hashing every pod's whole ruleset again on every pass
// was a fifth of a daemon's CPU during pod churn.
type passEncoder struct {
	dirs map[string]encodedDir
	prev map[policy.PodRef]encodedPod // the last pass's; read-only
	next map[policy.PodRef]encodedPod // this pass's, the next one's prev
	// joined counts the rulesets this pass assembled and hashed.
	joined int
}

// encodedDir is a direction's frame and its digest.
type encodedDir struct {
	b      []byte
	digest string
}

// encodedPod is a pod's ruleset as a pass encoded it: its own frame, its
// directions, and the bytes and digest they make.
type encodedPod struct {
	head   []byte
	in, eg encodedDir
	b      []byte
	digest string
}

// record returns the store's record of p, its parts with it.
func (p encodedPod) record(rs *policy.Ruleset) store.PolicyRecord {
	r := store.PolicyRecord{Namespace: rs.Pod.Namespace, Name: rs.Pod.Name, Digest: p.digest, Isolated: isolated(rs), Ruleset: p.b,
		Parts: []string{p.in.digest}, PartData: [][]byte{p.in.b}}
	if p.eg.digest != p.in.digest {
		r.Parts, r.PartData = append(r.Parts, p.eg.digest), append(r.PartData, p.eg.b)
	}
	return r
}

func newPassEncoder(prev map[policy.PodRef]encodedPod) *passEncoder {
	return &passEncoder{dirs: make(map[string]encodedDir), prev: prev, next: make(map[policy.PodRef]encodedPod)}
}

func (e *passEncoder) direction(key string, d policy.Direction) (encodedDir, error) {
	if x, ok := e.dirs[key]; ok {
		return x, nil
	}
	b, err := gobFrame(d)
	if err != nil {
		return encodedDir{}, err
	}
	x := encodedDir{b: b, digest: store.PolicyDigest(b)}
	e.dirs[key] = x
	return x, nil
}

// encode returns c's encoding, as encodeRuleset(c.Ruleset) does.
func (e *passEncoder) encode(c policy.Compiled) (encodedPod, error) {
	rs := c.Ruleset
	head, err := gobFrame(headOf(rs))
	var in, eg encodedDir
	if err == nil {
		in, err = e.direction(c.IngressKey, rs.Ingress)
	}
	if err == nil {
		eg, err = e.direction(c.EgressKey, rs.Egress)
	}
	if err != nil {
		return encodedPod{}, fmt.Errorf("encode ruleset of %s: %w", rs.Pod, err)
	}
	p, ok := e.prev[rs.Pod]
	if !ok || p.in.digest != in.digest || p.eg.digest != eg.digest || !bytes.Equal(p.head, head) {
		p = encodedPod{head: head, in: in, eg: eg}
		p.b, p.digest = joinRuleset(head, in.digest, eg.digest)
		e.joined++
	}
	e.next[rs.Pod] = p
	return p, nil
}

// withHead returns p with rs's own part (its pod, addresses, node) in
// place of p's, p's directions kept: rs must have p's directions.
func (p encodedPod) withHead(rs *policy.Ruleset) (encodedPod, error) {
	head, err := gobFrame(headOf(rs))
	if err != nil {
		return encodedPod{}, fmt.Errorf("encode ruleset of %s: %w", rs.Pod, err)
	}
	n := encodedPod{head: head, in: p.in, eg: p.eg}
	n.b, n.digest = joinRuleset(head, p.in.digest, p.eg.digest)
	return n, nil
}

// DecodeRecord returns a record's ruleset (its parts as
// store.ReadTx.PolicyRecord fills them).
func DecodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) { return decodeRecord(r) }

// decodeRecord returns a record's ruleset.
func decodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) {
	parts := make(map[string][]byte, len(r.Parts))
	for i, d := range r.Parts {
		if i < len(r.PartData) {
			parts[d] = r.PartData[i]
		}
	}
	rs, err := decodeRuleset(r.Ruleset, parts)
	if err != nil {
		return nil, fmt.Errorf("policy record of %s: %w (the daemon rewrites it on its next pass)", store.PodKey(r.Namespace, r.Name), err)
	}
	return rs, nil
}

// decodeRuleset decodes b, its directions' frames taken from parts by
// digest.
func decodeRuleset(b []byte, parts map[string][]byte) (*policy.Ruleset, error) {
	var frames [][]byte
	switch {
	case bytes.HasPrefix(b, []byte(rulesetMagicV2)):
		b = b[len(rulesetMagicV2):]
		for range 3 {
			f, rest, err := nextFrame(b)
			if err != nil {
				return nil, err
			}
			frames, b = append(frames, f), rest
		}
	case bytes.HasPrefix(b, []byte(rulesetMagic)):
		f, rest, err := nextFrame(b[len(rulesetMagic):])
		if err != nil {
			return nil, err
		}
		frames, b = append(frames, f), rest
		for range 2 {
			if len(b) < partDigestLen {
				return nil, errors.New("truncated ruleset")
			}
			d := string(b[:partDigestLen])
			part, ok := parts[d]
			if !ok {
				return nil, fmt.Errorf("part %s missing", d)
			}
			f, rest, err := nextFrame(part)
			if err != nil || len(rest) != 0 {
				return nil, fmt.Errorf("part %s: not one frame (%v)", d, err)
			}
			frames, b = append(frames, f), b[partDigestLen:]
		}
	default:
		return nil, errors.New("not a ruleset of this veni version")
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the ruleset", len(b))
	}
	var head rulesetHead
	rs := new(policy.Ruleset)
	for i, v := range []any{&head, &rs.Ingress, &rs.Egress} {
		if err := gob.NewDecoder(bytes.NewReader(frames[i])).Decode(v); err != nil {
			return nil, err
		}
	}
	rs.Pod, rs.IPs, rs.Node, rs.HostNetwork = head.Pod, head.IPs, head.Node, head.HostNetwork
	return rs, nil
}

// nextFrame splits b after its first length-framed value.
func nextFrame(b []byte) (frame, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("truncated ruleset")
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, errors.New("truncated ruleset")
	}
	return b[4 : 4+n], b[4+n:], nil
}

func isolated(rs *policy.Ruleset) bool { return rs.Ingress.Isolated || rs.Egress.Isolated }
