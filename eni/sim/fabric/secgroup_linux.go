package fabric

import (
	"bytes"
	"fmt"
	"os/exec"

	"github.com/veni-cni/veni/eni/sim"
)

var _ sim.SecurityGroupFabric = (*Fabric)(nil)

// SetSecurityPolicy makes the VPC enforce p (secgroup.go describes the
// rule set). A policy equal to the one last applied is not applied again.
//
// Equivalent to: nsenter --net=/run/netns/<sim>-vpc nft -f - < script
func (f *Fabric) SetSecurityPolicy(p sim.SecurityPolicy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	script := renderSecurityPolicy(p, LinkName)
	if script == f.sgScript {
		return nil
	}
	if err := nftIn(NetNSPath(f.VPCNetNS()), script); err != nil {
		return fmt.Errorf("apply security groups: %w", err)
	}
	f.sgScript = script
	return nil
}

// nftIn runs "nft -f -" with script in the network namespace at nsPath.
// nft runs as a child entered into the namespace by nsenter, so no thread
// of ours switches namespace.
func nftIn(nsPath, script string) error {
	cmd := exec.Command("nsenter", "--net="+nsPath, "--", "nft", "-f", "-")
	cmd.Stdin = bytes.NewBufferString(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft -f: %w: %s (is nftables installed?)", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
