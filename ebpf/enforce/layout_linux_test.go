package enforce

import (
	"encoding/binary"
	"testing"
)

// TestTableLayout_MatchesC keeps table.go's and drops_linux.go's byte
// layouts in step with the C structs, as bpf2go generated them.
func TestTableLayout_MatchesC(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"pol_key", keySize, binary.Size(policyPolKey{})},
		{"pol_value", valueSize, binary.Size(policyPolValue{})},
		{"pol_ep", epSize, binary.Size(policyPolEp{})},
		{"pol_drop", dropSize, binary.Size(policyPolDrop{})},
		{"pol_drop6", drop6Size, binary.Size(policyPolDrop6{})},
		{"ct_key", ctKeySize, binary.Size(policyCtKey{})},
		{"ct6_key", ct6KeySize, binary.Size(policyCt6Key{})},
		{"ct_value", ctValueSize, binary.Size(policyCtValue{})},
		{"pol_key bits", keyBits, 8 * (binary.Size(policyPolKey{}) - 4)},
	} {
		if c.got != c.want {
			t.Errorf("%s: Go uses %d, C has %d", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"HEAD", kindHead, uint32(policyPolKindPOL_KIND_HEAD)},
		{"IN4", kindIn4, uint32(policyPolKindPOL_KIND_IN4)},
		{"OUT4", kindOut4, uint32(policyPolKindPOL_KIND_OUT4)},
		{"IN6", kindIn6, uint32(policyPolKindPOL_KIND_IN6)},
		{"OUT6", kindOut6, uint32(policyPolKindPOL_KIND_OUT6)},
		{"PORTS", kindPorts, uint32(policyPolKindPOL_KIND_PORTS)},
		{"ISOLATED_IN", flagIsolatedIn, uint32(policyPolFlagPOL_F_ISOLATED_IN)},
		{"ISOLATED_OUT", flagIsolatedOut, uint32(policyPolFlagPOL_F_ISOLATED_OUT)},
		{"FAIL_CLOSED", flagFailClosed, uint32(policyPolFlagPOL_F_FAIL_CLOSED)},
		{"R_POLICY", uint32(ReasonPolicy), uint32(policyPolReasonPOL_R_POLICY)},
		{"R_CHANGED", uint32(ReasonChanged), uint32(policyPolReasonPOL_R_CHANGED)},
		{"R_RELATED", uint32(ReasonRelated), uint32(policyPolReasonPOL_R_RELATED)},
		{"R_FRAGMENT", uint32(ReasonFragment), uint32(policyPolReasonPOL_R_FRAGMENT)},
		{"R_IPV6", uint32(ReasonIPv6), uint32(policyPolReasonPOL_R_IPV6)},
		{"R_MALFORMED", uint32(ReasonMalformed), uint32(policyPolReasonPOL_R_MALFORMED)},
		{"INGRESS", uint32(Ingress), uint32(policyPolDirPOL_INGRESS)},
		{"EGRESS", uint32(Egress), uint32(policyPolDirPOL_EGRESS)},
	} {
		if c.got != c.want {
			t.Errorf("%s: Go uses %d, C has %d", c.name, c.got, c.want)
		}
	}
}
