package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/veni-cni/veni/eni/sim/fabric"
)

// A simulated cluster may join a real Kubernetes API server (a test's
// kube-apiserver on the host's loopback). The nodes cannot reach the host:
// the VPC has no uplink. So the server relays one port inside the VPC to
// it, like a cluster's API endpoint in a real VPC, and every node's daemon
// gets a kubeconfig that names that port, the server's CA and, for the
// certificate check, the server's own name.

// KubeAPIPort is the port inside the VPC, on the metadata address, that
// relays to the API server.
const KubeAPIPort = 6443

// KubeSpec is the API server the nodes join.
type KubeSpec struct {
	Server string `json:"server"` // https://HOST:PORT, reachable from the host
	CAData []byte `json:"caData,omitempty"`
	Token  string `json:"token,omitempty"` // the daemons' bearer token
}

// ParseKubeconfig reads the current context of a kubeconfig (YAML or
// JSON) as the KubeSpec the nodes get: server, CA (inline or file) and a
// bearer token (inline or file).
func ParseKubeconfig(path string) (KubeSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return KubeSpec{}, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc struct {
		CurrentContext string `json:"current-context"`
		Clusters       []struct {
			Name    string `json:"name"`
			Cluster struct {
				Server string `json:"server"`
				CAData string `json:"certificate-authority-data"`
				CAFile string `json:"certificate-authority"`
			} `json:"cluster"`
		} `json:"clusters"`
		Contexts []struct {
			Name    string `json:"name"`
			Context struct {
				Cluster string `json:"cluster"`
				User    string `json:"user"`
			} `json:"context"`
		} `json:"contexts"`
		Users []struct {
			Name string `json:"name"`
			User struct {
				Token     string `json:"token"`
				TokenFile string `json:"tokenFile"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return KubeSpec{}, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	var cluster, user string
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			cluster, user = c.Context.Cluster, c.Context.User
		}
	}
	if cluster == "" {
		return KubeSpec{}, fmt.Errorf("kubeconfig %s: no current context", path)
	}
	var spec KubeSpec
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(path), p)
	}
	for _, c := range kc.Clusters {
		if c.Name != cluster {
			continue
		}
		spec.Server = c.Cluster.Server
		switch {
		case c.Cluster.CAData != "":
			var b []byte
			if err := json.Unmarshal([]byte(`"`+c.Cluster.CAData+`"`), &b); err != nil {
				return spec, fmt.Errorf("kubeconfig %s: certificate-authority-data: %w", path, err)
			}
			spec.CAData = b
		case c.Cluster.CAFile != "":
			if spec.CAData, err = os.ReadFile(rel(c.Cluster.CAFile)); err != nil {
				return spec, fmt.Errorf("kubeconfig %s: %w", path, err)
			}
		}
	}
	for _, u := range kc.Users {
		if u.Name != user {
			continue
		}
		spec.Token = u.User.Token
		if spec.Token == "" && u.User.TokenFile != "" {
			b, err := os.ReadFile(rel(u.User.TokenFile))
			if err != nil {
				return spec, fmt.Errorf("kubeconfig %s: %w", path, err)
			}
			spec.Token = string(b)
		}
	}
	if spec.Server == "" || spec.Token == "" {
		return spec, fmt.Errorf("kubeconfig %s: the nodes need a server and a bearer token (a client certificate is not relayed)", path)
	}
	return spec, nil
}

// nodeKubeconfig is the kubeconfig a node's daemon gets: the relay in the
// VPC, checked against the API server's own name.
func nodeKubeconfig(k KubeSpec, node string) ([]byte, error) {
	u, err := url.Parse(k.Server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("kube server %q: not a URL", k.Server)
	}
	relay := "https://" + netip.AddrPortFrom(fabric.MetadataAddr, KubeAPIPort).String()
	kc := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "sim",
		"clusters": []any{map[string]any{"name": "sim", "cluster": map[string]any{
			"server": relay, "certificate-authority-data": k.CAData, "tls-server-name": u.Hostname(),
		}}},
		"users":    []any{map[string]any{"name": node, "user": map[string]any{"token": k.Token}}},
		"contexts": []any{map[string]any{"name": "sim", "context": map[string]any{"cluster": "sim", "user": node}}},
	}
	return json.Marshal(kc)
}

// relayKubeAPI accepts connections inside the VPC and pipes each to the
// API server on the host, until l is closed.
func relayKubeAPI(l net.Listener, server string, log *slog.Logger) error {
	u, err := url.Parse(server)
	if err != nil {
		return err
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "443")
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					log.Warn("kube api relay", "err", err)
				}
				return
			}
			go pipe(c, target, log)
		}
	}()
	return nil
}

func pipe(c net.Conn, target string, log *slog.Logger) {
	defer c.Close()
	var d net.Dialer
	up, err := d.DialContext(context.Background(), "tcp", target)
	if err != nil {
		log.Warn("kube api relay: dial", "target", target, "err", err)
		return
	}
	defer up.Close()
	var wg sync.WaitGroup
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Add(2)
	go copyHalf(up, c)
	go copyHalf(c, up)
	wg.Wait()
}
