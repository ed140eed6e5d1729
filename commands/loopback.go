package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	cniversion "github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/veni-cni/veni/netplumb"
)

// LoopbackName is the program name under which veni is the CNI "loopback"
// plugin. containerd 1.6's CRI adds every sandbox's lo through a loopback
// plugin in its CNI bin dir and fails the sandbox without one; "veni
// install" links veni under this name when the directory has none.
const LoopbackName = "loopback"

// RunLoopback is the CNI loopback plugin role, what containernetworking's
// plugins/main/loopback does: ADD brings lo up in the sandbox and reports
// its addresses, CHECK verifies lo is up, DEL does nothing (lo dies with
// the namespace, and taking it down under a running container would cut
// its localhost), STATUS and GC have nothing to report or collect. The CNI
// protocol owns stdin, stdout and the exit code.
func RunLoopback() error {
	runtime.GOMAXPROCS(1)
	about := fmt.Sprintf("veni %s as the CNI loopback plugin", version)
	if err := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add:    loopbackAdd,
		Del:    loopbackDel,
		Check:  loopbackCheck,
		Status: func(*skel.CmdArgs) error { return nil },
		GC:     func(*skel.CmdArgs) error { return nil },
	}, cniversion.All, about); err != nil {
		if perr := err.Print(); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	return nil
}

// loadLoopbackConf parses the plugin's configuration and its prevResult.
func loadLoopbackConf(stdin []byte) (*types.NetConf, error) {
	conf := &types.NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse network configuration", err.Error())
	}
	if err := cniversion.ParsePrevResult(conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse prevResult", err.Error())
	}
	return conf, nil
}

// loopbackNetNS checks the sandbox path: one that is not a network
// namespace is CNI code 4.
func loopbackNetNS(path string) error {
	if err := ns.IsNSorErr(path); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("network namespace %s is not usable", path), err.Error())
	}
	return nil
}

// loopbackAdd is "ip link set lo up" in the sandbox. Its result names lo
// with its addresses, or passes a previous plugin's result through.
func loopbackAdd(args *skel.CmdArgs) error {
	conf, err := loadLoopbackConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := loopbackNetNS(args.Netns); err != nil {
		return err
	}
	addrs, err := netplumb.LoopbackUp(args.Netns)
	if err != nil {
		return err
	}
	if conf.PrevResult != nil {
		return types.PrintResult(conf.PrevResult, conf.CNIVersion)
	}
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{{Name: "lo", Mac: "00:00:00:00:00:00", Sandbox: args.Netns}},
	}
	for _, a := range addrs {
		res.IPs = append(res.IPs, &types100.IPConfig{Interface: types100.Int(0), Address: net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}})
	}
	return types.PrintResult(res, conf.CNIVersion)
}

// loopbackCheck verifies lo is up in the sandbox.
func loopbackCheck(args *skel.CmdArgs) error {
	if _, err := loadLoopbackConf(args.StdinData); err != nil {
		return err
	}
	if err := loopbackNetNS(args.Netns); err != nil {
		return err
	}
	up, err := netplumb.LoopbackIsUp(args.Netns)
	if err != nil {
		return err
	}
	if !up {
		return types.NewError(types.ErrInternal, fmt.Sprintf("lo is down in %s", args.Netns), "something took it down after ADD")
	}
	return nil
}

// loopbackDel does nothing: see RunLoopback.
func loopbackDel(args *skel.CmdArgs) error {
	_, err := loadLoopbackConf(args.StdinData)
	return err
}
