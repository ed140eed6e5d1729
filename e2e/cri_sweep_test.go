package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	simcluster "github.com/veni-cni/veni/eni/sim/cluster"
	"github.com/veni-cni/veni/internal/crictest"
)

// orphanEnv carries the node a helper test binary runs its containerd in.
const orphanEnv = "VENI_E2E_CRI_ORPHAN"

// TestCRI_OrphanHelper is not a test: run by TestCRI_StartContainerd_
// SweepsKilledRun in a child test binary, it starts containerd in the node
// named by $VENI_E2E_CRI_ORPHAN (netns, cni bin dir, conf dir), runs one
// sandbox, says where, and waits to be killed.
func TestCRI_OrphanHelper(t *testing.T) {
	env := os.Getenv(orphanEnv)
	if env == "" {
		return
	}
	f := strings.Split(env, ",")
	ctrd := crictest.StartContainerd(t, crictest.Options{Name: "orphan", NetNS: f[0], CNIBinDir: f[1], CNIConfDir: f[2]})
	sb, err := ctrd.Kubelet().RunPod(context.Background(), newCRIPod("orphan"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s %s %s\n", ctrd.Dir, sb.ID, sb.NetNS)
	select {}
}

// processesWith returns the pids whose command line contains s.
func processesWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

// Ensure a test binary killed with its containerd running (no cleanup ran:
// containerd, its shim and the sandbox live on, the sandbox never got its
// DEL) is cleaned up by the next StartContainerd; and that veni's GC then
// frees the address of the pod whose runtime vanished.
func TestCRI_StartContainerd_SweepsKilledRun(t *testing.T) {
	c := mustCluster(t, "--nodes", "1")
	crictest.RequireContainerd(t)
	st, err := simcluster.ReadState(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCRI_OrphanHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanEnv+"="+strings.Join([]string{c.nodes["node-1"].netns, st.CNIBin(), st.Paths("node-1").ConfDir}, ","))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir, id, netns string
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if dir != "" {
			_, _ = crictest.Sweep(dir) // gone already when the test passed
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(time.Minute)
	for dir == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("helper exited before its sandbox ran")
			}
			if f := strings.Fields(l); len(f) == 4 && f[0] == "READY" {
				dir, id, netns = f[1], f[2], f[3]
			}
		case <-timeout:
			t.Fatal("helper's sandbox not running after a minute")
		}
	}
	if a, ok := c.criAllocs(t, "node-1")[id]; !ok || a.State != "bound" {
		t.Fatalf("the orphan's sandbox %s has no bound allocation: %+v", id, a)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(processesWith(dir)) < 2 {
		t.Fatalf("after kill -9 of the test binary, processes of %s: %v; want containerd and a shim alive, or the test proves nothing", dir, processesWith(dir))
	}

	// The next harness sweeps the dead run's containerd before it starts.
	c.mustContainerds(t, "node-1")
	if pids := processesWith(dir); len(pids) != 0 {
		t.Errorf("processes of the killed run left: %v", pids)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the killed run's directory %s: %v", dir, err)
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("the killed run's sandbox netns %s: %v", netns, err)
	}
	if cg, _ := filepath.Glob("/sys/fs/cgroup/*/" + filepath.Base(dir)); len(cg) != 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	if cached, _ := filepath.Glob("/var/lib/cni/results/*-" + id + "-*"); len(cached) != 0 {
		t.Errorf("libcni results of the orphan left: %v", cached)
	}

	// Its pod never got a DEL: veni's GC frees the address once the
	// sandbox's namespace is gone.
	c.mustRun("sim", "exec", "node-1", "--", c.bin, "ipam", "gc", "--config", c.nodes["node-1"].config)
	if a, ok := c.criAllocs(t, "node-1")[id]; ok {
		t.Errorf("after ipam gc the orphan's allocation stays: %+v", a)
	}
	if links := c.nodeLinks(t, "node-1"); hostVeths(links) != 0 {
		t.Errorf("pod veths left:\n%s", links)
	}
	c.mustVerify(t, "node-1")
}
