package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/; "make fuzz" runs each
// target for a short while, and a plain "go test" runs the seeds.

// FuzzLoadNetConf feeds loadNetConf what a runtime could put on stdin.
// A configuration it rejects gets a CNI error with a spec code (6: not
// JSON veni can decode; 7: a value veni refuses, named in the message); one
// it accepts holds veni's limits and reads back the same after re-encoding.
func FuzzLoadNetConf(f *testing.F) {
	f.Fuzz(func(t *testing.T, stdin []byte) {
		conf, err := loadNetConf(stdin)
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) {
				t.Fatalf("error %v (%T) is not a *types.Error", err, err)
			}
			switch cniErr.Code {
			case types.ErrDecodingFailure:
			case types.ErrInvalidNetworkConfig:
				if !strings.Contains(cniErr.Msg, "mtu") && !strings.Contains(cniErr.Msg, "timeout") {
					t.Fatalf("code 7 without naming the field: %q", cniErr.Msg)
				}
			default:
				t.Fatalf("code %d (%s), want 6 or 7", cniErr.Code, cniErr.Msg)
			}
			if cniErr.Msg == "" {
				t.Fatal("CNI error without a message")
			}
			return
		}
		if conf.MTU != 0 && conf.MTU < 576 {
			t.Fatalf("accepted mtu %d", conf.MTU)
		}
		if conf.addTimeout <= 0 || (conf.Timeout == "" && conf.addTimeout != defaultAddTimeout) {
			t.Fatalf("timeout %q gave an ADD deadline of %v", conf.Timeout, conf.addTimeout)
		}
		once := mustEncodeNetConf(t, conf)
		again, err := loadNetConf(once)
		if err != nil {
			t.Fatalf("re-encoded configuration rejected: %v\n%s", err, once)
		}
		if twice := mustEncodeNetConf(t, again); !bytes.Equal(once, twice) {
			t.Fatalf("configuration changed on a round trip:\n%s\n%s", once, twice)
		}
		if again.addTimeout != conf.addTimeout {
			t.Fatalf("ADD deadline %v became %v on a round trip", conf.addTimeout, again.addTimeout)
		}
	})
}

// mustEncodeNetConf writes conf as a runtime would send it. types.NetConf's
// own MarshalJSON is promoted to NetConf and knows nothing of veni's
// fields, so they are added to its output here.
func mustEncodeNetConf(tb testing.TB, conf *NetConf) []byte {
	tb.Helper()
	b, err := json.Marshal(&conf.NetConf)
	if err != nil {
		tb.Fatalf("encode %+v: %v", conf.NetConf, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	for k, v := range map[string]any{"config": conf.Config, "mtu": conf.MTU, "timeout": conf.Timeout} {
		if v != "" && v != 0 {
			m[k] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// FuzzOwnerOf feeds ownerOf the CNI_ARGS a runtime could pass ("K=V;K=V").
// A rejected string gets CNI code 4; an accepted one yields exactly the
// values its K8S_* pairs carry (the last of a repeated key wins), only
// carries unknown keys when IgnoreUnknown is true, and the owner written
// back as CNI_ARGS reads back the same.
func FuzzOwnerOf(f *testing.F) {
	f.Fuzz(func(t *testing.T, cniArgs string) {
		args := &skel.CmdArgs{ContainerID: "c0ffee", IfName: "eth0", Netns: "/run/netns/pod", Args: cniArgs}
		owner, err := ownerOf(args, "veni")
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(cniErr.Msg, "CNI_ARGS") {
				t.Fatalf("error %#v, want a CNI error with code 4 naming CNI_ARGS", err)
			}
			return
		}
		if owner.ContainerID != args.ContainerID || owner.IfName != args.IfName || owner.NetNS != args.Netns {
			t.Fatalf("owner %+v does not carry the attachment of %+v", owner, args)
		}
		pairs := map[string]string{}
		if cniArgs != "" {
			for _, p := range strings.Split(cniArgs, ";") {
				k, v, ok := strings.Cut(p, "=")
				if !ok || strings.Contains(v, "=") {
					t.Fatalf("accepted %q with the malformed pair %q", cniArgs, p)
				}
				pairs[k] = v
			}
		}
		got := map[string]string{
			"K8S_POD_NAMESPACE": owner.PodNamespace,
			"K8S_POD_NAME":      owner.PodName,
			"K8S_POD_UID":       owner.PodUID,
		}
		for k, v := range got {
			if pairs[k] != v {
				t.Fatalf("%s = %q, CNI_ARGS %q says %q", k, v, cniArgs, pairs[k])
			}
		}
		known := map[string]bool{"IgnoreUnknown": true, "K8S_POD_NAMESPACE": true, "K8S_POD_NAME": true, "K8S_POD_UID": true, "K8S_POD_INFRA_CONTAINER_ID": true}
		for k := range pairs {
			if ignore := strings.ToLower(pairs["IgnoreUnknown"]); !known[k] && ignore != "1" && ignore != "true" {
				t.Fatalf("accepted unknown key %q without IgnoreUnknown: %q", k, cniArgs)
			}
		}
		back := *args
		back.Args = fmt.Sprintf("K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s", owner.PodNamespace, owner.PodName, owner.PodUID)
		again, err := ownerOf(&back, "veni")
		if err != nil || !reflect.DeepEqual(again, owner) {
			t.Fatalf("owner %+v written as %q reads back as %+v, %v", owner, back.Args, again, err)
		}
	})
}
