package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// iperf3Report is the part of "iperf3 -J" output the benchmark reads.
type iperf3Report struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf3 returns the receiver's throughput in bit/s: what arrived,
// not what the sender queued.
func parseIperf3(out []byte) (float64, error) {
	var r iperf3Report
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("iperf3 json: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3: %w (no end.sum_received)", errNoResult)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// latency is a request/response round trip's distribution, in µs.
type latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// parseSockperf reads the percentiles of "sockperf ping-pong" output,
// lines such as "sockperf: ---> percentile 99.000 =   63.062" (µs).
func parseSockperf(out []byte) (latency, error) {
	var l latency
	var have50, have99 bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), "---> percentile ")
		if !ok {
			continue
		}
		pct, val, ok := strings.Cut(rest, "=")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return l, fmt.Errorf("sockperf percentile %q: %w", rest, err)
		}
		switch strings.TrimSpace(pct) {
		case "50.000":
			l.P50, have50 = v, true
		case "99.000":
			l.P99, have99 = v, true
		}
	}
	if !have50 || !have99 {
		return l, fmt.Errorf("sockperf: %w (no 50th and 99th percentile lines)", errNoResult)
	}
	return l, nil
}

// parseSnmp6Forwarded returns Ip6OutForwDatagrams from /proc/net/snmp6
// (one "name value" pair a line): the IPv6 packets a namespace forwarded.
func parseSnmp6Forwarded(snmp6 []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(snmp6))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "Ip6OutForwDatagrams" {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("snmp6: %w (no Ip6OutForwDatagrams)", errNoResult)
}

// parseSnmpForwarded returns Ip ForwDatagrams from /proc/net/snmp: the
// packets a namespace's IP stack forwarded. Two "Ip:" lines hold the
// field names and their values.
func parseSnmpForwarded(snmp []byte) (uint64, error) {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(snmp))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, n := range names {
			if n == "ForwDatagrams" && i+1 < len(f) {
				return strconv.ParseUint(f[i+1], 10, 64)
			}
		}
		break
	}
	return 0, fmt.Errorf("snmp: %w (no Ip ForwDatagrams)", errNoResult)
}
