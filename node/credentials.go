package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/veni-cni/veni/eni"
)

// DefaultCredentialsPath is where a node keeps cloud credentials that both
// the CNI plugin on the host and the daemon read (credential_path in the
// DaemonSet's eni_conf). It is root's, mode 0600.
const DefaultCredentialsPath = "/etc/veni/credentials"

// RAMRoleDisabled as ram_role keeps the instance RAM role out of the
// credential chain.
const RAMRoleDisabled = "disabled"

// credentialHint is what an operator can do when a process has none.
const credentialHint = "give this node credentials: put {\"AccessKeyId\",\"AccessKeySecret\"[,\"SecurityToken\",\"Expiration\"]} " +
	"in " + DefaultCredentialsPath + " (mode 0600, owned by root) and set credential_path to it, " +
	"or attach a RAM role to the instance"

// credentials returns the provider the cloud client signs with, chosen by
// the chain in doc.go, and says which source it is. It does no network I/O:
// an instance RAM role is first asked when the client first signs.
//
// May return an error wrapping eni.ErrNoCredentials, and also
// eni.ErrInsecureCredentials when a source was refused for its mode.
func (e *Env) credentials() (eni.CredentialProvider, string, error) {
	cfg := e.Config
	var tried []string
	if role := cfg.RAMRole; role != "" && role != RAMRoleDisabled {
		return e.ramRole(role, []string{"ram_role " + role + " is set"}), "instance ram role " + role + " (ram_role)", nil
	}
	if cfg.AccessKey != "" || cfg.AccessSecret != "" {
		if e.configMode&0o077 != 0 {
			return nil, "", fmt.Errorf("refusing access_key/access_secret in %s: its mode %04o lets group or others read it: %w: %w (chmod 600 %s, or move the keys to a credentials file)",
				e.ConfigPath, e.configMode.Perm(), eni.ErrNoCredentials, eni.ErrInsecureCredentials, e.ConfigPath)
		}
		c := eni.Credentials{AccessKeyID: cfg.AccessKey, AccessKeySecret: cfg.AccessSecret}
		if c.AccessKeyID == "" || c.AccessKeySecret == "" {
			return nil, "", fmt.Errorf("%s sets only one of access_key and access_secret: %w", e.ConfigPath, eni.ErrNoCredentials)
		}
		return eni.StaticCredentials(c), "access_key in " + e.ConfigPath, nil
	}
	tried = append(tried, "no access_key/access_secret in "+e.ConfigPath)
	if p := cfg.CredentialPath; p != "" {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			return eni.NewFileCredentials(p), "credential_path " + p, nil
		case errors.Is(err, fs.ErrNotExist):
			tried = append(tried, "credential_path "+p+" does not exist")
		default:
			return nil, "", fmt.Errorf("credential_path %s: %w: %w", p, eni.ErrNoCredentials, err)
		}
	} else {
		tried = append(tried, "no credential_path")
	}
	if eni.CredentialsInEnv() {
		c, err := eni.LoadCredentials("")
		if err != nil {
			return nil, "", fmt.Errorf("%w: %w", eni.ErrNoCredentials, err)
		}
		return eni.StaticCredentials(c), "environment", nil
	}
	tried = append(tried, "no ALIBABA_CLOUD_ACCESS_KEY_ID in the environment")
	if cfg.RAMRole == RAMRoleDisabled {
		return nil, "", fmt.Errorf("%w for this process: %s, and ram_role is disabled (%s)",
			eni.ErrNoCredentials, strings.Join(tried, ", "), credentialHint)
	}
	return e.ramRole("", tried), "instance ram role (auto)", nil
}

// ramRole is the RAM role source; a failure to get any credentials from it
// says what else was tried.
func (e *Env) ramRole(role string, tried []string) eni.CredentialProvider {
	return chainEnd{p: eni.NewRAMRoleCredentials(e.Metadata(), role), tried: strings.Join(tried, ", ")}
}

// chainEnd is the last source of the chain: its failure is the chain's.
type chainEnd struct {
	p     eni.CredentialProvider
	tried string
}

func (c chainEnd) Credentials(ctx context.Context) (eni.Credentials, error) {
	creds, err := c.p.Credentials(ctx)
	if err != nil {
		return creds, fmt.Errorf("%w for this process: %s, and no instance ram role: %w (%s)",
			eni.ErrNoCredentials, c.tried, err, credentialHint)
	}
	return creds, nil
}

func (c chainEnd) Invalidate() bool { return c.p.Invalidate() }

// credentialWarnings are what an operator should fix in how this node
// holds credentials, found without reading any secret and without network
// I/O: Load computes them for "veni status".
func credentialWarnings(path string, mode fs.FileMode, cfg configView) []string {
	var out []string
	hasKeys := cfg.AccessKey != "" || cfg.AccessSecret != ""
	forced := cfg.RAMRole != "" && cfg.RAMRole != RAMRoleDisabled
	if hasKeys && mode&0o077 != 0 {
		out = append(out, fmt.Sprintf("%s holds access_key/access_secret but has mode %04o: the keys are refused until you run chmod 600 %s (or move them to a credentials file)",
			path, mode.Perm(), path))
	}
	if hasKeys && forced {
		out = append(out, fmt.Sprintf("access_key/access_secret in %s are ignored: ram_role %q is set", path, cfg.RAMRole))
	}
	if p := cfg.CredentialPath; p != "" && !forced && !hasKeys {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, fmt.Sprintf("credential_path %s does not exist: the environment or the instance RAM role is used instead", p))
		case err != nil:
			out = append(out, fmt.Sprintf("credential_path %s: %v", p, err))
		default:
			if err := eni.CheckPrivate(p, fi); err != nil {
				out = append(out, err.Error())
			}
		}
	}
	return out
}

// configView is the part of config.Config the warnings read.
type configView struct {
	AccessKey, AccessSecret, CredentialPath, RAMRole string
}
