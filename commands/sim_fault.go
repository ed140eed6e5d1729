package commands

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type simFaultOptions struct {
	*simGlobalOptions
	req simFaultRequest
}

func (o *simFaultOptions) AddFlags(fs *pflag.FlagSet) {
	fs.Float64Var(&o.req.ThrottleRate, "throttle", 0, "share of calls answered Throttling.User (0..1)")
	fs.Float64Var(&o.req.ErrorRate, "error-rate", 0, "share of calls answered a server error (0..1)")
	fs.StringVar(&o.req.ErrorCode, "error-code", "", "error code of those server errors (default InternalError)")
	fs.DurationVar(&o.req.Latency, "latency", 0, "latency added to every call")
	fs.BoolVar(&o.req.Clear, "clear", false, "remove the fault of ACTION, or every fault without ACTION")
}

func newSimFaultCommand(g *simGlobalOptions) *cobra.Command {
	o := &simFaultOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "fault [ACTION]",
		Short: "Inject latency, throttling or errors into an OpenAPI action (all actions without ACTION)",
		Example: `  veni sim fault AssignPrivateIpAddresses --throttle 0.5 --latency 200ms
  veni sim fault --error-rate 0.1
  veni sim fault --clear`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.req.Action = args[0]
			}
			r := o.req
			if r.ThrottleRate < 0 || r.ThrottleRate > 1 || r.ErrorRate < 0 || r.ErrorRate > 1 {
				return fmt.Errorf("--throttle and --error-rate must be within 0..1")
			}
			if !r.Clear && r.ThrottleRate == 0 && r.ErrorRate == 0 && r.Latency == 0 {
				return fmt.Errorf("nothing to inject: give --throttle, --error-rate or --latency (or --clear)")
			}
			return runSimFault(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runSimFault(ctx context.Context, w io.Writer, o *simFaultOptions) error {
	st, err := runningSim(o.dir)
	if err != nil {
		return err
	}
	if err := simControl(ctx, st, "POST", "/v1/faults", o.req, nil); err != nil {
		return err
	}
	target := o.req.Action
	if target == "" {
		target = "every action"
	}
	if o.req.Clear {
		_, err = fmt.Fprintf(w, "faults cleared on %s\n", target)
		return err
	}
	_, err = fmt.Fprintf(w, "fault on %s: latency %s, throttle %.2f, errors %.2f\n", target, o.req.Latency.Round(time.Millisecond), o.req.ThrottleRate, o.req.ErrorRate)
	return err
}
