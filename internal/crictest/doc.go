// Package crictest runs a real container runtime for veni's tests:
// Debian's containerd (1.6) with runc and its CRI plugin, started inside a
// simulated node's network namespace, so that veni is driven through the
// CRI exactly as kubelet drives it on a real node (ADD for loopback and
// eth0 at once, DEL twice, the second without a netns).
//
// What it owns:
//   - one containerd per StartContainerd call: its config, root, state,
//     sockets, runc root, logs and cgroup parent, all under one directory
//     named veni-crictest-* in the temporary directory (short enough for
//     unix socket paths), removed when the test ends;
//   - the pause image (localhost/pause:1): a static Go program built once
//     per test binary, packed by hand as a docker-archive and imported with
//     ctr, so no registry is needed;
//   - a CRI client (Client) and a kubelet stand-in (Kubelet) that turns a
//     pod's namespace, name and uid into RunPodSandbox, StopPodSandbox and
//     RemovePodSandbox calls; a test that creates Pod objects in an API
//     server can drive the same sandboxes through it.
//
// What it must not touch: veni's own packages (it drives the CNI plugin
// only through containerd) and anything of another containerd on the
// machine. It imports k8s.io/cri-api, so only _test.go files may import it:
// the veni binary never links it (TestVeniBinary_Deps_NoCRI holds it to that).
//
// Lifetimes: containerd's shims outlive it, so a test's cleanup removes every
// sandbox through the CRI before stopping containerd, then sweeps what a
// failure may have left (shims, runc containers, mounts under the
// directory, cgroups). Directories left by a test binary that was killed are
// swept when the next StartContainerd of a later run begins.
//
// Threads: containerd is forked from a thread switched into the node's
// network namespace (only that namespace: runc needs the host's /sys and
// its cgroup mounts, which "veni sim exec" would hide). Nothing else here
// runs inside a namespace.
package crictest
