package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veni-cni/veni/kube"
)

// Static token users of every cluster.
const (
	AdminToken      = "veni-admin-token" // user "admin", group system:masters
	AdminUser       = "admin"
	RestrictedToken = "veni-restricted-token" // user RestrictedUser, no groups, no rights
	RestrictedUser  = "veni-restricted"
)

// Options tune a cluster.
type Options struct {
	// APIServerArgs are appended to kube-apiserver's flags, e.g.
	// "--watch-cache-sizes=configmaps#0" to send a resource's watches
	// straight to etcd.
	APIServerArgs []string
}

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	// Host is the API server's URL, https://127.0.0.1:PORT.
	Host string
	// Dir holds the data, certificates, token file and logs.
	Dir string
	// BinDir holds kube-apiserver, kubectl and etcd.
	BinDir string
	// EtcdURL is etcd's client URL.
	EtcdURL string

	pki     *pki
	apiArgs []string
	port    int

	mu        sync.Mutex
	etcd      *proc
	apiserver *proc
}

// REST is what a client-go rest.Config needs:
// rest.Config{Host: r.Host, BearerToken: r.BearerToken,
// TLSClientConfig: rest.TLSClientConfig{CAData: r.CAData}}.
type REST struct {
	Host        string
	BearerToken string
	CAData      []byte
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Binaries returns the directory holding kube-apiserver, kubectl and etcd:
// $VENI_K8S_BIN, or what hack/k8s-bins.sh builds or finds in its cache.
// Without them it skips tb (fails it under VENI_REQUIRE_PRIVILEGED=1).
func Binaries(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() { binDir, binErr = findBinaries() })
	if binErr != nil {
		if os.Getenv("VENI_REQUIRE_PRIVILEGED") == "1" {
			tb.Fatalf("kube-apiserver unavailable and VENI_REQUIRE_PRIVILEGED=1: %v", binErr)
		}
		tb.Skipf("kube-apiserver unavailable, skipping (set VENI_K8S_BIN or run hack/k8s-bins.sh): %v", binErr)
	}
	return binDir
}

func findBinaries() (string, error) {
	dir := os.Getenv("VENI_K8S_BIN")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		var out, errb bytes.Buffer
		cmd := exec.Command(filepath.Join(root, "hack", "k8s-bins.sh"))
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("hack/k8s-bins.sh: %w: %s", err, tail(errb.String(), 2000))
		}
		dir = strings.TrimSpace(out.String())
	}
	for _, b := range []string{"kube-apiserver", "kubectl", "etcd"} {
		if _, err := exec.LookPath(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s missing in %s: %w", b, dir, err)
		}
	}
	return dir, nil
}

// repoRoot walks up from the working directory to veni's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/veni-cni/veni\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("veni's go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Start runs etcd and kube-apiserver for tb and waits until /readyz is OK
// and the default namespace exists. Both are stopped and the directory
// removed when tb ends.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	bins := Binaries(tb)
	dir := tb.TempDir()
	p, err := newPKI(dir)
	if err != nil {
		tb.Fatalf("kubetest: certificates: %v", err)
	}
	tokens := AdminToken + "," + AdminUser + ",admin-uid,system:masters\n" +
		RestrictedToken + "," + RestrictedUser + ",restricted-uid\n"
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		tb.Fatal(err)
	}
	ports := freePorts(tb, 3)
	c := &Cluster{
		Dir: dir, BinDir: bins, pki: p, port: ports[2],
		Host:    "https://127.0.0.1:" + strconv.Itoa(ports[2]),
		EtcdURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
	}
	tb.Cleanup(func() { c.stopAll(tb) })

	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.etcd, err = startProc(dir, "etcd", filepath.Join(bins, "etcd"),
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+c.EtcdURL, "--advertise-client-urls="+c.EtcdURL,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=kubetest="+peer, "--log-level=warn")
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	if err := waitHTTP(c.etcd, c.EtcdURL+"/health", "", 30*time.Second); err != nil {
		tb.Fatalf("kubetest: etcd not healthy: %v\n%s", err, c.etcd.logTail())
	}
	c.apiArgs = append([]string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + p.serverCert,
		"--tls-private-key-file=" + p.serverKey,
		"--client-ca-file=" + p.caFile,
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	}, opts.APIServerArgs...)
	c.StartAPIServer(tb)
	return c
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port and waits for it to be ready.
func (c *Cluster) StartAPIServer(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		tb.Fatal("kubetest: kube-apiserver already running")
	}
	var err error
	c.apiserver, err = startProc(c.Dir, "kube-apiserver", filepath.Join(c.BinDir, "kube-apiserver"), c.apiArgs...)
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	if err := waitHTTP(c.apiserver, c.Host+"/readyz", AdminToken, 90*time.Second); err != nil {
		tb.Fatalf("kubetest: kube-apiserver not ready: %v\n%s", err, c.apiserver.logTail())
	}
	if err := waitHTTP(c.apiserver, c.Host+"/api/v1/namespaces/default", AdminToken, 30*time.Second); err != nil {
		tb.Fatalf("kubetest: default namespace missing: %v\n%s", err, c.apiserver.logTail())
	}
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 10 s);
// etcd keeps running.
func (c *Cluster) StopAPIServer(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver == nil {
		return
	}
	c.apiserver.stop()
	c.apiserver = nil
}

// RestartAPIServer stops and starts kube-apiserver.
func (c *Cluster) RestartAPIServer(tb testing.TB) {
	tb.Helper()
	c.StopAPIServer(tb)
	c.StartAPIServer(tb)
}

func (c *Cluster) stopAll(tb testing.TB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tb.Failed() {
		for _, p := range []*proc{c.apiserver, c.etcd} {
			if p != nil {
				tb.Logf("kubetest: %s log tail:\n%s", p.name, p.logTail())
			}
		}
	}
	if c.apiserver != nil {
		c.apiserver.stop()
		c.apiserver = nil
	}
	if c.etcd != nil {
		c.etcd.stop()
		c.etcd = nil
	}
}

// Config returns an admin kube.Config that verifies the server with the
// cluster's CA.
func (c *Cluster) Config() *kube.Config {
	return &kube.Config{Host: c.Host, BearerToken: AdminToken, CAData: c.pki.caPEM}
}

// ConfigFor returns a kube.Config for a bearer token (RestrictedToken, or
// a service account token from ServiceAccountToken).
func (c *Cluster) ConfigFor(token string) *kube.Config {
	return &kube.Config{Host: c.Host, BearerToken: token, CAData: c.pki.caPEM}
}

// CAData returns the PEM CA that signed the serving certificate.
func (c *Cluster) CAData() []byte { return c.pki.caPEM }

// ClientCert returns the PEM client certificate and key of CertUser (in
// system:masters).
func (c *Cluster) ClientCert() (cert, key []byte) { return c.pki.clientCert, c.pki.clientKey }

// REST returns the admin connection parameters for client-go.
func (c *Cluster) REST() REST {
	return REST{Host: c.Host, BearerToken: AdminToken, CAData: c.pki.caPEM}
}

// Client returns an admin kube.Client.
func (c *Cluster) Client(tb testing.TB) *kube.Client {
	tb.Helper()
	cl, err := kube.New(c.Config())
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// freePorts reserves n distinct loopback ports and releases them for the
// servers to bind. Another process could take one in between; the servers
// then fail to start and the test says so.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("kubetest: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// proc is a started server with its log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // exit status, valid after done
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	return tail(string(b), 4000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitHTTP polls url every 100 ms until it answers 200, p exits, or the
// timeout passes.
func waitHTTP(p *proc, url, token string, timeout time.Duration) error {
	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // readiness probe only
	}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s after %s", url, last, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
