package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veni-cni/veni/eni/sim"
	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
)

// Duration prints as "1.23s" in the JSON report.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// scaleReport is the figures of one scale run (the JSON of
// VENI_SCALE_REPORT).
type scaleReport struct {
	Nodes       int `json:"nodes"`
	PodsPerNode int `json:"podsPerNode"`
	Pods        int `json:"pods"` // that got an address
	Parallel    int `json:"parallel"`

	SimUp      Duration `json:"simUp"`      // veni sim up, to its return
	NodesReady Duration `json:"nodesReady"` // from sim up to every node's conflist
	PodsReady  Duration `json:"podsReady"`  // from the first ADD to the last address
	// FirstPodsReady is when every node had its first pod's address.
	FirstPodsReady Duration `json:"firstPodsReady"`
	AddP50         Duration `json:"addP50"` // one pod, first try to address, retries included
	AddP99         Duration `json:"addP99"`
	AddMax         Duration `json:"addMax"`
	// PluginP50 and PluginP99 are the successful plugin call alone: what
	// one ADD costs, without waiting for a slot or a retry.
	PluginP50 Duration `json:"pluginP50"`
	PluginP99 Duration `json:"pluginP99"`

	RetriedPods int `json:"retriedPods"` // pods whose ADD said "try again later" at least once
	Retries     int `json:"retries"`
	FailedPods  int `json:"failedPods"`

	Boot        callFigures `json:"boot"`     // from sim up to all nodes ready
	FirstPod    callFigures `json:"firstPod"` // for every node's first pod address
	PodCalls    callFigures `json:"podCalls"` // while the pods were added (the first ones included)
	Idle        callFigures `json:"idle"`     // during the idle window
	IdleSeconds float64     `json:"idleSeconds,omitempty"`
	// Churn is half of every node's pods deleted and replaced, warm pools.
	Churn      callFigures `json:"churn"`
	ChurnPods  int         `json:"churnPods"`
	ChurnTook  Duration    `json:"churnTook"`
	churnAdds  []addResult
	Throttling throttling `json:"throttling"`

	DaemonRSSMedianMB float64 `json:"daemonRssMedianMB"`
	DaemonRSSMaxMB    float64 `json:"daemonRssMaxMB"`
	ServerCPUSeconds  float64 `json:"serverCpuSeconds"` // user+system of the sim server since it started
	ServerCPUShare    float64 `json:"serverCpuShare"`   // of one core, over the run
	ServerRSSMB       float64 `json:"serverRssMB"`
	ServerPeakRSSMB   float64 `json:"serverPeakRssMB"`

	Pairs       int      `json:"pairs"`
	PairsFailed int      `json:"pairsFailed"`
	ProbeTook   Duration `json:"probeTook"`
}

// callFigures are the cloud calls of one phase by action, and per 100 pods
// when the phase added pods.
type callFigures struct {
	Calls      map[string]int     `json:"calls"`
	Total      int                `json:"total"`
	Per100Pods map[string]float64 `json:"per100Pods,omitempty"`
	Throttled  int                `json:"throttled"` // answered Throttling*, quota or fault
	OverQuota  int                `json:"overQuota"`
}

type throttling struct {
	Calls     int     `json:"calls"`
	OverQuota int     `json:"overQuota"`
	Share     float64 `json:"share"` // OverQuota / Calls
	// Minutes are the busiest windows: calls and throttles by action.
	Windows []sim.QuotaWindow `json:"windows,omitempty"`
}

// callsOf is what the cloud counted between two snapshots.
func callsOf(before, after sim.Snapshot, pods int) callFigures {
	f := callFigures{Calls: map[string]int{}}
	for a, st := range after.Calls {
		b := before.Calls[a]
		if n := st.Calls - b.Calls; n > 0 {
			f.Calls[a] = n
			f.Total += n
		}
		f.Throttled += st.Throttled - b.Throttled
		f.OverQuota += st.OverQuota - b.OverQuota
	}
	if pods > 0 {
		f.Per100Pods = map[string]float64{}
		for a, n := range f.Calls {
			f.Per100Pods[a] = float64(n) * 100 / float64(pods)
		}
	}
	return f
}

func throttledShare(snap sim.Snapshot) throttling {
	var t throttling
	for _, st := range snap.Calls {
		t.Calls += st.Calls
		t.OverQuota += st.OverQuota
	}
	if t.Calls > 0 {
		t.Share = float64(t.OverQuota) / float64(t.Calls)
	}
	t.Windows = snap.Throttling.Windows
	return t
}

func (r *scaleReport) addStats(adds []addResult) {
	var took, plugin []time.Duration
	for _, a := range adds {
		if a.retries > 0 {
			r.RetriedPods++
			r.Retries += a.retries
		}
		if a.err != nil {
			r.FailedPods++
			continue
		}
		took = append(took, a.took)
		plugin = append(plugin, a.plugin)
	}
	slices.Sort(took)
	slices.Sort(plugin)
	r.PluginP50, r.PluginP99 = Duration(percentile(plugin, 50)), Duration(percentile(plugin, 99))
	r.AddP50, r.AddP99 = Duration(percentile(took, 50)), Duration(percentile(took, 99))
	if len(took) > 0 {
		r.AddMax = Duration(took[len(took)-1].Round(time.Millisecond))
	}
}

// procSample is a process's CPU time when the sample was taken.
type procSample struct {
	pid int
	at  time.Time
	cpu float64 // seconds, user + system
}

// procCPU is the user and system time of pid, in seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// procMemMB returns a /proc/PID/status field (VmRSS, VmHWM) in MB.
func procMemMB(pid int, field string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// measureProcesses takes the daemons' memory and the server's CPU since
// start and its memory.
func (r *scaleReport) measureProcesses(tb testing.TB, l simcluster.Live, start procSample) {
	tb.Helper()
	var rss []float64
	for _, n := range l.Nodes {
		if n.Daemon != nil && n.Daemon.Alive {
			if mb := procMemMB(n.Daemon.PID, "VmRSS"); mb > 0 {
				rss = append(rss, mb)
			}
		}
	}
	slices.Sort(rss)
	if len(rss) > 0 {
		r.DaemonRSSMedianMB, r.DaemonRSSMaxMB = rss[len(rss)/2], rss[len(rss)-1]
	}
	r.ServerCPUSeconds = procCPU(start.pid) - start.cpu
	if el := time.Since(start.at).Seconds(); el > 0 {
		r.ServerCPUShare = r.ServerCPUSeconds / el
	}
	r.ServerRSSMB, r.ServerPeakRSSMB = procMemMB(start.pid, "VmRSS"), procMemMB(start.pid, "VmHWM")
}

// log prints the figures as the bench's closing note.
func (r *scaleReport) log(tb testing.TB) {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "scale: %d nodes x %d pods (%d ADDs at a time)\n", r.Nodes, r.PodsPerNode, r.Parallel)
	fmt.Fprintf(&b, "  time to all nodes ready   %s (sim up returned after %s)\n", r.NodesReady, r.SimUp)
	fmt.Fprintf(&b, "  time to all pods ready    %s (%d pods; ADD p50 %s p99 %s max %s, retries included)\n", r.PodsReady, r.Pods, r.AddP50, r.AddP99, r.AddMax)
	fmt.Fprintf(&b, "  one plugin ADD            p50 %s p99 %s (the call alone, no queue or retry)\n", r.PluginP50, r.PluginP99)
	fmt.Fprintf(&b, "  try again later (11)      %d pods, %d retries; %d pods failed\n", r.RetriedPods, r.Retries, r.FailedPods)
	fmt.Fprintf(&b, "  boot calls                %s\n", r.Boot.line(r.Nodes, "per node"))
	fmt.Fprintf(&b, "  first pod address calls   %s (every node's first pod ready after %s)\n", r.FirstPod.line(r.Nodes, "per node"), r.FirstPodsReady)
	fmt.Fprintf(&b, "  pod calls per 100 pods    %s\n", perHundred(r.PodCalls))
	if r.IdleSeconds > 0 {
		perHour := 3600 / r.IdleSeconds / float64(r.Nodes)
		fmt.Fprintf(&b, "  idle calls / node / hour  %.1f (%s in %.0fs)\n", float64(r.Idle.Total)*perHour, r.Idle.line(0, ""), r.IdleSeconds)
	}
	if r.ChurnPods > 0 {
		fmt.Fprintf(&b, "  churn calls per 100 pods  %s (%d pods replaced in %s)\n", perHundred(r.Churn), r.ChurnPods, r.ChurnTook)
	}
	fmt.Fprintf(&b, "  throttled share           %.2f%% (%d of %d calls over the account's quota)\n", 100*r.Throttling.Share, r.Throttling.OverQuota, r.Throttling.Calls)
	fmt.Fprintf(&b, "  daemon RSS                median %.1f MB, max %.1f MB\n", r.DaemonRSSMedianMB, r.DaemonRSSMaxMB)
	fmt.Fprintf(&b, "  sim server                %.1f s CPU (%.0f%% of a core), RSS %.0f MB (peak %.0f MB)\n", r.ServerCPUSeconds, 100*r.ServerCPUShare, r.ServerRSSMB, r.ServerPeakRSSMB)
	fmt.Fprintf(&b, "  TCP pairs                 %d probed, %d failed (%s)\n", r.Pairs, r.PairsFailed, r.ProbeTook)
	for _, w := range r.Throttling.Windows {
		if n := sum(w.Throttled); n > 0 {
			fmt.Fprintf(&b, "  window %s             %d calls, %d throttled: %v\n", w.Start.Format("15:04:05"), sum(w.Calls), n, w.Throttled)
		}
	}
	tb.Log(b.String())
}

func (f callFigures) line(n int, unit string) string {
	parts := make([]string, 0, len(f.Calls))
	for _, a := range slices.Sorted(maps.Keys(f.Calls)) {
		parts = append(parts, fmt.Sprintf("%s %d", a, f.Calls[a]))
	}
	if f.Total == 0 {
		return "no call"
	}
	s := fmt.Sprintf("%d", f.Total)
	if n > 0 {
		s += fmt.Sprintf(" (%.1f %s)", float64(f.Total)/float64(n), unit)
	}
	return s + ": " + strings.Join(parts, ", ")
}

func perHundred(f callFigures) string {
	total := 0.0
	parts := make([]string, 0, len(f.Per100Pods))
	for _, a := range slices.Sorted(maps.Keys(f.Per100Pods)) {
		parts = append(parts, fmt.Sprintf("%s %.1f", a, f.Per100Pods[a]))
		total += f.Per100Pods[a]
	}
	if len(parts) == 0 {
		return "0 (no call)"
	}
	return fmt.Sprintf("%.1f: %s", total, strings.Join(parts, ", "))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (r *scaleReport) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
