package podpolicy

import (
	"bytes"
	"crypto/sha256"
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
// egress. The bytes (and the digest) are a function of the ruleset alone,
// and pods that policies select alike (CompileAllKeyed's keys) share their
// directions' bytes, which a daemon's pass encodes once (passEncoder)
// instead of once per pod.
const rulesetMagic = "VRS2"

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

// joinRuleset assembles a ruleset's bytes from its three frames.
func joinRuleset(head, in, eg []byte) ([]byte, string) {
	b := make([]byte, 0, len(rulesetMagic)+len(head)+len(in)+len(eg))
	b = append(b, rulesetMagic...)
	b = append(append(append(b, head...), in...), eg...)
	return b, store.PolicyDigest(b)
}

// encodeRuleset returns rs's bytes and their digest: a pass of one pod.
func encodeRuleset(rs *policy.Ruleset) ([]byte, string, error) {
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

// encodedDir is a direction's frame and its sum.
type encodedDir struct {
	b   []byte
	sum [sha256.Size]byte
}

// encodedPod is a pod's ruleset as a pass encoded it: its own frame, its
// directions' sums, and the bytes and digest they make.
type encodedPod struct {
	head   []byte
	in, eg [sha256.Size]byte
	b      []byte
	digest string
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
	x := encodedDir{b: b, sum: sha256.Sum256(b)}
	e.dirs[key] = x
	return x, nil
}

// encode returns c's bytes and digest, as encodeRuleset(c.Ruleset) does.
func (e *passEncoder) encode(c policy.Compiled) ([]byte, string, error) {
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
		return nil, "", fmt.Errorf("encode ruleset of %s: %w", rs.Pod, err)
	}
	p, ok := e.prev[rs.Pod]
	if !ok || p.in != in.sum || p.eg != eg.sum || !bytes.Equal(p.head, head) {
		p = encodedPod{head: head, in: in.sum, eg: eg.sum}
		p.b, p.digest = joinRuleset(head, in.b, eg.b)
		e.joined++
	}
	e.next[rs.Pod] = p
	return p.b, p.digest, nil
}

// withHead returns p with rs's own part (its pod, addresses, node) in
// place of p's, p's directions kept: rs must have p's directions.
func (p encodedPod) withHead(rs *policy.Ruleset) (encodedPod, error) {
	head, err := gobFrame(headOf(rs))
	if err != nil {
		return encodedPod{}, fmt.Errorf("encode ruleset of %s: %w", rs.Pod, err)
	}
	dirs := p.b[len(rulesetMagic)+len(p.head):]
	n := encodedPod{head: head, in: p.in, eg: p.eg}
	n.b, n.digest = joinRuleset(head, dirs, nil)
	return n, nil
}

// DecodeRecord returns a record's ruleset.
func DecodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) { return decodeRecord(r) }

// decodeRecord returns a record's ruleset.
func decodeRecord(r store.PolicyRecord) (*policy.Ruleset, error) {
	rs, err := decodeRuleset(r.Ruleset)
	if err != nil {
		return nil, fmt.Errorf("policy record of %s: %w (the daemon rewrites it on its next pass)", store.PodKey(r.Namespace, r.Name), err)
	}
	return rs, nil
}

func decodeRuleset(b []byte) (*policy.Ruleset, error) {
	if !bytes.HasPrefix(b, []byte(rulesetMagic)) {
		return nil, errors.New("not a ruleset of this veni version")
	}
	b = b[len(rulesetMagic):]
	var head rulesetHead
	rs := new(policy.Ruleset)
	for _, v := range []any{&head, &rs.Ingress, &rs.Egress} {
		if len(b) < 4 {
			return nil, errors.New("truncated ruleset")
		}
		n := binary.LittleEndian.Uint32(b[0:4])
		if uint64(n) > uint64(len(b)-4) {
			return nil, errors.New("truncated ruleset")
		}
		if err := gob.NewDecoder(bytes.NewReader(b[4 : 4+n])).Decode(v); err != nil {
			return nil, err
		}
		b = b[4+n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the ruleset", len(b))
	}
	rs.Pod, rs.IPs, rs.Node, rs.HostNetwork = head.Pod, head.IPs, head.Node, head.HostNetwork
	return rs, nil
}

func isolated(rs *policy.Ruleset) bool { return rs.Ingress.Isolated || rs.Egress.Isolated }
