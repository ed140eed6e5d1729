package enforce

import "testing"

// BenchmarkCheck measures what pol_to_pod costs a packet (root;
// bpf_prog_test_run's own repeat loop, so the figure is the program's
// time per packet): an endpoint no policy selects, an established flow of
// a selected one, and a new flow its table denies (decided every time:
// a denied flow is not tracked).
func BenchmarkCheck(b *testing.B) {
	const ep = "10.0.0.1"
	cases := []struct {
		name   string
		table  bool
		p      testPacket
		warmup bool // open the flow first: the packet is then established
		pass   bool
	}{
		{"v4/unselected", false, tcpAck("10.1.5.5", ep, 1000, 80), false, true},
		{"v4/established", true, tcpAck("10.1.5.5", ep, 1001, 80), true, true},
		{"v4/denied", true, tcpSyn("172.16.0.1", ep, 1002, 80), false, false},
		{"v6/unselected", false, tcpAck("fd00::5", "fd00::1", 1000, 80), false, true},
		{"v6/established", true, tcpAck("fd00::5", "fd00::1", 1001, 80), true, true},
		{"v6/denied", true, tcpSyn("fd00:1::1", "fd00::1", 1002, 80), false, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e := newTestEnforcer(b)
			if c.table {
				mustSet(b, e.Enforcer, loKey, testRuleset())
			}
			if c.warmup {
				open := c.p
				open.syn, open.ack = true, false
				if !in(b, e, open) {
					b.Fatalf("%s dropped", open)
				}
			}
			if in(b, e, c.p) != c.pass {
				b.Fatalf("%s: pass=%v, want %v", c.p, !c.pass, c.pass)
			}
			b.ResetTimer()
			ret, d, err := e.test.PolToPod.Benchmark(c.p.frame(), b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			if want := map[bool]int32{true: -1, false: 2}[c.pass]; int32(ret) != want {
				b.Fatalf("verdict %d", int32(ret))
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
		})
	}
}
