// Package cluster runs the simulated VPC as a cluster of nodes: the server
// behind "veni sim" and everything a running sim is made of besides the
// cloud model (package sim) and the packets (package fabric).
//
// What it owns:
//   - the server (Serve): it builds the fabric and the cloud, serves the
//     OpenAPI and the metadata inside the VPC namespace and a control
//     endpoint on loopback, writes the sim directory's files, and tears it
//     all down in dependency order on SIGTERM;
//   - the kernel's limits that count every namespace together (the
//     neighbour table, inotify instances, pids, namespaces): the server
//     raises what its nodes may need before it builds anything and lowers
//     them when it stops, through a registry shared by every sim on the
//     machine (kernel.go); Down does it for a server that crashed;
//   - the sim directory: state.json (what the server publishes, versioned by
//     StateVersion), spec.json (what it was asked to build), progress.json
//     (start-up progress), control.token (the control endpoint's secret),
//     credentials.json, sim.log, and one directory per node;
//   - the control endpoint and its typed Client. The endpoint answers only
//     local, non-browser callers that hold the token: see control.go;
//   - the nodes: each gets what "veni install" gives a real node (a
//     veni.json, a conflist, a CNI bin dir holding veni and loopback) and,
//     unless disabled, a "veni daemon" in its network namespace, supervised
//     like systemd's Restart=always with an exponential back-off
//     (Supervisor, which is generic: later a node may also run containerd or
//     talk to a real kube-apiserver);
//   - pods (AddPod, DelPod, ListPods) through the libcni runtime of package
//     pods, and the all-pairs connectivity matrix;
//   - Up, Down and Exec: starting a detached server and waiting for it,
//     cleaning up after a live or crashed sim, running a command inside a
//     node.
//
// What it must not touch: it tests veni, so it must not depend on veni's
// code. It must not import veni's ipam, store, node, config, netplumb, daemon
// or ebpf packages (imports_test.go holds it to that). It drives veni only
// as a user or a runtime would: it execs the veni binary ("veni daemon",
// "veni status -o json", "veni ipam list -o json", "veni cleanup") and runs
// the CNI plugin through libcni, reading what those print. Packets are
// package fabric's, the cloud model package sim's, pod namespaces package
// pods'.
//
// Threads: a child that must live in a node's network namespace is forked
// from a thread switched into it (ns.WithNetNSPath around exec.Cmd.Start),
// and waited on from ordinary goroutines. Nothing else runs inside a
// namespace here.
package cluster
