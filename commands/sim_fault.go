package commands

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/veni-cni/veni/eni/sim"
	"github.com/veni-cni/veni/eni/sim/cluster"
)

type simFaultOptions struct {
	*simGlobalOptions
	latency      time.Duration
	throttle     float64
	throttleCode string
	errorRate    float64
	errorCode    string
	clear        bool
	attachDelay  time.Duration
	attachNever  bool
	describeLag  time.Duration
	vswitch      string
	vswitchFree  int
	show         bool
	changedFlags func(name string) bool
}

func (o *simFaultOptions) AddFlags(fs *pflag.FlagSet) {
	fs.Float64Var(&o.throttle, "throttle", 0, "share of calls answered throttled (0..1), apart from the account's API quotas")
	fs.StringVar(&o.throttleCode, "throttle-code", "", "code of those throttled answers: Throttling.User (default), Throttling.Api or Throttling")
	fs.Float64Var(&o.errorRate, "error-rate", 0, "share of calls answered a server error (0..1)")
	fs.StringVar(&o.errorCode, "error-code", "", "code of those server errors: InternalError (500, default) or ServiceUnavailable (503)")
	fs.DurationVar(&o.latency, "latency", 0, "latency added to every call")
	fs.BoolVar(&o.clear, "clear", false, "remove the fault of ACTION or of --vswitch, or every fault with neither")
	fs.DurationVar(&o.attachDelay, "attach-delay", 0, "attaches stay Attaching this long (0 removes the attach fault)")
	fs.BoolVar(&o.attachNever, "attach-never", false, "attaches stay Attaching until the attach fault is removed")
	fs.DurationVar(&o.describeLag, "describe-lag", 0, "Describe* answer from the state this long ago (0: live)")
	fs.StringVar(&o.vswitch, "vswitch", "", "vSwitch id for --vswitch-free or --clear")
	fs.IntVar(&o.vswitchFree, "vswitch-free", 0, "the vSwitch hands out at most this many more addresses, then IpNotEnough")
	fs.BoolVar(&o.show, "show", false, "print the faults in force and how many were injected, change nothing")
}

func newSimFaultCommand(g *simGlobalOptions) *cobra.Command {
	o := &simFaultOptions{simGlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "fault [ACTION]",
		Short: "Inject faults into the sim: per-action latency, throttling and 5xx; slow or stuck attaches; describe lag; exhausted vSwitches",
		Example: `  veni sim fault AssignPrivateIpAddresses --throttle 0.3 --latency 200ms
  veni sim fault --error-rate 0.05 --error-code ServiceUnavailable
  veni sim fault --attach-delay 10s          # or --attach-never; --attach-delay 0 removes it
  veni sim fault --describe-lag 2s
  veni sim fault --vswitch vsw-sim-a --vswitch-free 0
  veni sim fault --vswitch vsw-sim-a --clear
  veni sim fault --show
  veni sim fault --clear`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changedFlags = cmd.Flags().Changed
			var action string
			if len(args) == 1 {
				action = args[0]
			}
			req, err := o.request(action)
			if err != nil {
				return err
			}
			return cluster.Fault(cmd.Context(), cmd.OutOrStdout(), o.dir, req, o.show)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// request turns the flags into one change of the sim's faults.
func (o *simFaultOptions) request(action string) (sim.FaultRequest, error) {
	req := sim.FaultRequest{Action: action, Latency: o.latency, ThrottleRate: o.throttle, ThrottleCode: o.throttleCode, ErrorRate: o.errorRate, ErrorCode: o.errorCode, Clear: o.clear}
	changed := o.changedFlags
	switch {
	case o.throttle < 0 || o.throttle > 1 || o.errorRate < 0 || o.errorRate > 1:
		return req, errors.New("--throttle and --error-rate must be within 0..1")
	case o.latency < 0 || o.attachDelay < 0 || o.describeLag < 0:
		return req, errors.New("--latency, --attach-delay and --describe-lag must not be negative")
	case o.errorCode != "" && o.errorCode != sim.CodeInternalError && o.errorCode != sim.CodeServiceUnavailable:
		return req, fmt.Errorf("--error-code %q: want %s or %s", o.errorCode, sim.CodeInternalError, sim.CodeServiceUnavailable)
	case o.throttleCode != "" && o.throttleCode != sim.CodeThrottlingUser && o.throttleCode != sim.CodeThrottlingAPI && o.throttleCode != sim.CodeThrottlingPlain:
		return req, fmt.Errorf("--throttle-code %q: want %s, %s or %s", o.throttleCode, sim.CodeThrottlingUser, sim.CodeThrottlingAPI, sim.CodeThrottlingPlain)
	case changed("vswitch-free") && o.vswitchFree < 0:
		return req, errors.New("--vswitch-free must not be negative (use --clear to remove the cap)")
	case changed("vswitch-free") && o.vswitch == "":
		return req, errors.New("--vswitch-free needs --vswitch")
	case o.vswitch != "" && !changed("vswitch-free") && !o.clear:
		return req, errors.New("--vswitch needs --vswitch-free N or --clear")
	case o.attachNever && changed("attach-delay"):
		return req, errors.New("give --attach-delay or --attach-never, not both")
	}
	if changed("attach-delay") || o.attachNever {
		req.Attach = &sim.AttachFault{Delay: o.attachDelay, Never: o.attachNever}
	}
	if changed("describe-lag") {
		req.DescribeLag = &o.describeLag
	}
	req.VSwitchID = o.vswitch
	if changed("vswitch-free") {
		req.VSwitchMaxMore = &o.vswitchFree
	}
	if o.show {
		return req, nil
	}
	if !o.clear && req.Attach == nil && req.DescribeLag == nil && req.VSwitchMaxMore == nil &&
		o.throttle == 0 && o.errorRate == 0 && o.latency == 0 {
		return req, errors.New("nothing to inject: give --throttle, --error-rate, --latency, --attach-delay, --attach-never, --describe-lag or --vswitch-free (or --clear, --show)")
	}
	return req, nil
}
