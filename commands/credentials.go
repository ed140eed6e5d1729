package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/node"
)

// credentialsInstallOptions are the flags of "veni credentials install".
type credentialsInstallOptions struct {
	from     string
	to       string
	optional bool
	watch    time.Duration
}

func (o *credentialsInstallOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.from, "from", "/var/addon/token-config", "credentials file to install (the mounted Secret; mode 0600 or 0400)")
	fs.StringVar(&o.to, "to", node.DefaultCredentialsPath, "where the CNI plugin and the daemon read credentials (credential_path)")
	fs.BoolVar(&o.optional, "optional", false, "succeed when --from does not exist (a cluster that uses the instance RAM role)")
	fs.DurationVar(&o.watch, "watch", 0, "keep installing every interval until stopped, so a rotated Secret reaches the host (0: once)")
}

// newCredentialsCommand is "veni credentials": where the node's cloud
// credentials live.
func newCredentialsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Manage the cloud credentials the CNI plugin and the daemon share on this node",
	}
	cmd.AddCommand(newCredentialsInstallCommand())
	return cmd
}

func newCredentialsInstallCommand() *cobra.Command {
	o := &credentialsInstallOptions{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Copy a credentials file (Terway's addon token) to the host path both roles read, mode 0600",
		Long: `install checks the credentials file --from (JSON with AccessKeyId, AccessKeySecret
and optionally SecurityToken and Expiration; readable by its owner only) and
writes it to --to with mode 0600 through a rename. The DaemonSet's init container
runs it once so the first cold-path ADD on the host has credentials; a sidecar
runs it with --watch so a rotated token reaches the host before it expires.
Nothing it prints contains a secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.from == "" || o.to == "" {
				return errors.New("--from and --to must not be empty")
			}
			if o.watch < 0 {
				return fmt.Errorf("--watch %s: must not be negative", o.watch)
			}
			return runCredentialsInstall(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runCredentialsInstall(ctx context.Context, w io.Writer, o *credentialsInstallOptions) error {
	if o.watch > 0 {
		log := slog.New(slog.NewTextHandler(w, nil)).With("component", "credentials")
		return node.SyncCredentials(ctx, o.from, o.to, o.watch, log)
	}
	changed, err := node.InstallCredentials(o.from, o.to)
	switch {
	case errors.Is(err, fs.ErrNotExist) && o.optional:
		_, err = fmt.Fprintf(w, "no credentials at %s: nothing installed (the node uses its RAM role or what %s holds)\n", o.from, o.to)
		return err
	case err != nil:
		return err
	case changed:
		_, err = fmt.Fprintf(w, "installed %s from %s\n", o.to, o.from)
	default:
		_, err = fmt.Fprintf(w, "%s is up to date\n", o.to)
	}
	return err
}
