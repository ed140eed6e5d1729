package pods

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// Ensure an SCTP packet carries the CRC32c of itself with the checksum
// field zero, little-endian as RFC 9260 Appendix A stores it: for 32 zero
// bytes (common header and chunk all zero) that is iSCSI's known answer
// 0x8a9136aa (RFC 3720 B.4).
func TestSCTPPacket_Checksum(t *testing.T) {
	p := sctpPacket(0, 0, 0, make([]byte, 20))
	if got := binary.LittleEndian.Uint32(p[8:]); got != 0x8a9136aa {
		t.Errorf("checksum of zeros %#x, want 0x8a9136aa", got)
	}
	p = sctpPacket(40000, 80, 7, []byte{sctpAbort, 0, 0, 4})
	sum := binary.LittleEndian.Uint32(p[8:])
	binary.LittleEndian.PutUint32(p[8:], 0)
	if want := crc32.Checksum(p, castagnoli); sum != want {
		t.Errorf("checksum %#x, want %#x", sum, want)
	}
}

func TestParseProtocols(t *testing.T) {
	got, err := ParseProtocols("TCP, udp,sctp")
	if err != nil || len(got) != 3 || got[0] != TCP || got[1] != UDP || got[2] != SCTP {
		t.Errorf("ParseProtocols: %v, %v", got, err)
	}
	if _, err := ParseProtocols("icmp"); err == nil {
		t.Error("icmp accepted")
	}
}
