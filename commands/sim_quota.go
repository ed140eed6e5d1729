package commands

import (
	"errors"
	"maps"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simQuotaOptions struct {
	*simGlobalOptions
	account  int
	window   time.Duration
	off      bool
	defaults bool
	changed  func(name string) bool
}

func (o *simQuotaOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.account, "account", 0, "budget of every action together per window (0: none beyond the actions' own)")
	fs.DurationVar(&o.window, "window", 0, "length of a window (Alibaba's is a minute)")
	fs.BoolVar(&o.off, "off", false, "throttle nothing (faults still may)")
	fs.BoolVar(&o.defaults, "defaults", false, "start from the default quotas instead of those in force")
}

func newSimQuotaCommand(g *simGlobalOptions) *cobra.Command {
	o := &simQuotaOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "quota [ACTION=N ...]",
		Short: "Show or change the account's OpenAPI quotas: calls per action per minute, refused with Throttling.User until the next minute once spent",
		Example: `  veni sim quota                                   # the quotas and this minute's calls
  veni sim quota AssignPrivateIpAddresses=100       # N=0 lifts an action's own budget
  veni sim quota --account 1000 --window 10s
  veni sim quota --defaults
  veni sim quota --off`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed = cmd.Flags().Changed
			change, err := o.change(args)
			if err != nil {
				return err
			}
			return cluster.Quota(cmd.Context(), cmd.OutOrStdout(), o.dir, change)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// change returns what the flags and arguments make of the quotas in force,
// or nil when they change nothing (show).
func (o *simQuotaOptions) change(args []string) (func(sim.Quotas) (sim.Quotas, error), error) {
	if o.off && (len(args) > 0 || o.defaults || o.changed("account") || o.changed("window")) {
		return nil, errors.New("--off takes no other change")
	}
	if !o.off && !o.defaults && len(args) == 0 && !o.changed("account") && !o.changed("window") {
		return nil, nil
	}
	return func(q sim.Quotas) (sim.Quotas, error) {
		if o.off {
			return sim.Quotas{}, nil
		}
		if o.defaults {
			q = sim.DefaultQuotas()
		}
		q.PerAPI = maps.Clone(q.PerAPI)
		if o.changed("account") {
			q.Account = o.account
		}
		if o.changed("window") {
			q.Window = o.window
		}
		return cluster.ParseQuotas(q, args)
	}, nil
}
