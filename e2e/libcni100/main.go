// Command libcni100 drives CNI plugins the way Debian 12's containerd 1.6
// does through its CRI: with a libcni (containernetworking/cni v1.1.2)
// whose newest spec is 1.0.0, so it reads only a conflist's cniVersion and
// cannot parse a 1.1.0 result. It is its own module so that veni's module
// keeps its current libcni; veni's e2e tests build and run it inside a
// simulated node.
//
//	libcni100 [flags] add|check|del
//	libcni100 [flags] version
//
// add, like containerd, adds the sandbox's lo through the "loopback"
// plugin and then the first .conflist of -conf-dir on -ifname; del removes
// both. add prints {"loopback": RESULT, "result": RESULT}; version prints
// this libcni's newest spec and what the conflist's plugins and loopback
// support. A CNI error exits 1 with the error on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// loopbackConf is the configuration containerd 1.6 gives its loopback
// network (pkg/cri, "cni-loopback").
const loopbackConf = `{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}`

type options struct {
	confDir, binDir, cacheDir string
	netns, id, ifName         string
	podNamespace, podName     string
	podUID                    string
}

func main() {
	var o options
	flag.StringVar(&o.confDir, "conf-dir", "", "directory of the .conflist (first by name)")
	flag.StringVar(&o.binDir, "bin-dir", "", "CNI plugin directory (CNI_PATH)")
	flag.StringVar(&o.cacheDir, "cache-dir", "", "libcni's result cache")
	flag.StringVar(&o.netns, "netns", "", "the sandbox's network namespace path (empty on containerd's second DEL)")
	flag.StringVar(&o.id, "id", "", "the sandbox (container) id")
	flag.StringVar(&o.ifName, "ifname", "eth0", "the pod interface")
	flag.StringVar(&o.podNamespace, "pod-namespace", "default", "K8S_POD_NAMESPACE")
	flag.StringVar(&o.podName, "pod-name", "", "K8S_POD_NAME")
	flag.StringVar(&o.podUID, "pod-uid", "", "K8S_POD_UID")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: libcni100 [flags] add|check|del|version")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, flag.Arg(0), o); err != nil {
		fmt.Fprintf(os.Stderr, "libcni100 %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
}

func run(ctx context.Context, verb string, o options) error {
	files, err := libcni.ConfFiles(o.confDir, []string{".conflist"})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no .conflist in %s", o.confDir)
	}
	sort.Strings(files)
	list, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		return err
	}
	lo, err := libcni.ConfFromBytes([]byte(loopbackConf))
	if err != nil {
		return err
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{o.binDir}, o.cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: o.id,
		NetNS:       o.netns,
		IfName:      o.ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", o.podNamespace},
			{"K8S_POD_NAME", o.podName},
			{"K8S_POD_INFRA_CONTAINER_ID", o.id},
			{"K8S_POD_UID", o.podUID},
		},
	}
	loRT := *rt
	loRT.IfName = "lo"

	switch verb {
	case "add":
		loRes, err := cni.AddNetwork(ctx, lo, &loRT)
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return fmt.Errorf("%s: %w", list.Name, err)
		}
		return json.NewEncoder(os.Stdout).Encode(map[string]types.Result{"loopback": loRes, "result": res})
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return errors.Join(cni.DelNetworkList(ctx, list, rt), cni.DelNetwork(ctx, lo, &loRT))
	case "version":
		out := map[string]any{"libcni": version.Current()}
		for _, p := range append([]string{"loopback"}, pluginTypes(list)...) {
			info, err := cni.GetVersionInfo(ctx, p)
			if err != nil {
				return fmt.Errorf("version of %s in %s: %w", p, filepath.Clean(o.binDir), err)
			}
			out[p] = info.SupportedVersions()
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	return fmt.Errorf("unknown verb %q", verb)
}

func pluginTypes(list *libcni.NetworkConfigList) []string {
	var out []string
	for _, p := range list.Plugins {
		out = append(out, p.Network.Type)
	}
	return out
}
