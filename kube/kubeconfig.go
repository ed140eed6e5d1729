package kube

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// kubeconfig is the subset of clientcmd/api/v1.Config veni reads. Field
// names are the kubeconfig file's.
type kubeconfig struct {
	CurrentContext string         `json:"current-context"`
	Clusters       []namedCluster `json:"clusters"`
	Contexts       []namedContext `json:"contexts"`
	Users          []namedUser    `json:"users"`
}

type namedCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthority     string `json:"certificate-authority"`
		CertificateAuthorityData []byte `json:"certificate-authority-data"`
		InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
		TLSServerName            string `json:"tls-server-name"`
	} `json:"cluster"`
	dir string // directory of the file it came from: relative paths start there
}

type namedContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster   string `json:"cluster"`
		User      string `json:"user"`
		Namespace string `json:"namespace"`
	} `json:"context"`
}

type namedUser struct {
	Name string `json:"name"`
	User struct {
		Token                 string          `json:"token"`
		TokenFile             string          `json:"tokenFile"`
		ClientCertificate     string          `json:"client-certificate"`
		ClientCertificateData []byte          `json:"client-certificate-data"`
		ClientKey             string          `json:"client-key"`
		ClientKeyData         []byte          `json:"client-key-data"`
		Username              string          `json:"username"`
		Exec                  json.RawMessage `json:"exec"`
		AuthProvider          json.RawMessage `json:"auth-provider"`
	} `json:"user"`
	dir string
}

// LoadKubeconfig reads the kubeconfig files in paths (a KUBECONFIG-style
// list separated by os.PathListSeparator; empty means $KUBECONFIG, then
// ~/.kube/config) and returns the config of context (empty: the
// current-context). As with kubectl, the first file that defines a name
// wins, and relative file paths are relative to the file that names them.
// Files may be YAML or JSON. Token, token file and client certificates are
// supported; exec and auth-provider plugins are not (veni links no plugin
// machinery). May return an error wrapping ErrInvalidConfig.
func LoadKubeconfig(paths, context string) (*Config, error) {
	if paths == "" {
		paths = os.Getenv("KUBECONFIG")
	}
	if paths == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w: no path given and no home directory", ErrInvalidConfig)
		}
		paths = filepath.Join(home, ".kube", "config")
	}
	var merged kubeconfig
	read := 0
	for _, p := range filepath.SplitList(paths) {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) && strings.ContainsRune(paths, os.PathListSeparator) {
				continue // kubectl skips missing files in a list
			}
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		kc, err := parseKubeconfig(b)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", p, err)
		}
		mergeKubeconfig(&merged, kc, filepath.Dir(p))
		read++
	}
	if read == 0 {
		return nil, fmt.Errorf("kubeconfig: %w: none of %q exists", ErrInvalidConfig, paths)
	}
	return merged.config(context)
}

// parseKubeconfig decodes a YAML (or JSON, which is YAML) kubeconfig.
func parseKubeconfig(b []byte) (*kubeconfig, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &kc, nil
}

func mergeKubeconfig(dst, src *kubeconfig, dir string) {
	if dst.CurrentContext == "" {
		dst.CurrentContext = src.CurrentContext
	}
	for _, c := range src.Clusters {
		if findNamed(dst.Clusters, c.Name, func(x namedCluster) string { return x.Name }) < 0 {
			c.dir = dir
			dst.Clusters = append(dst.Clusters, c)
		}
	}
	for _, c := range src.Contexts {
		if findNamed(dst.Contexts, c.Name, func(x namedContext) string { return x.Name }) < 0 {
			dst.Contexts = append(dst.Contexts, c)
		}
	}
	for _, u := range src.Users {
		if findNamed(dst.Users, u.Name, func(x namedUser) string { return x.Name }) < 0 {
			u.dir = dir
			dst.Users = append(dst.Users, u)
		}
	}
}

func findNamed[T any](s []T, name string, nameOf func(T) string) int {
	for i, x := range s {
		if nameOf(x) == name {
			return i
		}
	}
	return -1
}

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func (kc *kubeconfig) config(context string) (*Config, error) {
	if context == "" {
		context = kc.CurrentContext
	}
	if context == "" {
		return nil, fmt.Errorf("kubeconfig: %w: no current-context and none given", ErrInvalidConfig)
	}
	ci := findNamed(kc.Contexts, context, func(x namedContext) string { return x.Name })
	if ci < 0 {
		return nil, fmt.Errorf("kubeconfig: %w: context %q not found", ErrInvalidConfig, context)
	}
	ctx := kc.Contexts[ci].Context
	cli := findNamed(kc.Clusters, ctx.Cluster, func(x namedCluster) string { return x.Name })
	if cli < 0 {
		return nil, fmt.Errorf("kubeconfig: %w: context %q names cluster %q, which is not defined", ErrInvalidConfig, context, ctx.Cluster)
	}
	cl := kc.Clusters[cli]
	if cl.Cluster.Server == "" {
		return nil, fmt.Errorf("kubeconfig: %w: cluster %q has no server", ErrInvalidConfig, cl.Name)
	}
	cfg := &Config{
		Host:       cl.Cluster.Server,
		CAData:     cl.Cluster.CertificateAuthorityData,
		CAFile:     resolvePath(cl.dir, cl.Cluster.CertificateAuthority),
		Insecure:   cl.Cluster.InsecureSkipTLSVerify,
		ServerName: cl.Cluster.TLSServerName,
		Namespace:  ctx.Namespace,
	}
	if ctx.User == "" {
		return cfg, nil
	}
	ui := findNamed(kc.Users, ctx.User, func(x namedUser) string { return x.Name })
	if ui < 0 {
		return nil, fmt.Errorf("kubeconfig: %w: context %q names user %q, which is not defined", ErrInvalidConfig, context, ctx.User)
	}
	u := kc.Users[ui]
	switch {
	case len(u.User.Exec) > 0 && string(u.User.Exec) != "null":
		return nil, fmt.Errorf("kubeconfig: %w: user %q uses an exec credential plugin (unsupported: use a token, tokenFile or client certificate)", ErrInvalidConfig, u.Name)
	case len(u.User.AuthProvider) > 0 && string(u.User.AuthProvider) != "null":
		return nil, fmt.Errorf("kubeconfig: %w: user %q uses an auth-provider (unsupported: use a token, tokenFile or client certificate)", ErrInvalidConfig, u.Name)
	case u.User.Username != "":
		return nil, fmt.Errorf("kubeconfig: %w: user %q uses basic auth (unsupported: use a token, tokenFile or client certificate)", ErrInvalidConfig, u.Name)
	}
	cfg.BearerToken = u.User.Token
	cfg.TokenFile = resolvePath(u.dir, u.User.TokenFile)
	cfg.CertData = u.User.ClientCertificateData
	cfg.CertFile = resolvePath(u.dir, u.User.ClientCertificate)
	cfg.KeyData = u.User.ClientKeyData
	cfg.KeyFile = resolvePath(u.dir, u.User.ClientKey)
	return cfg, nil
}
