// Package kubetest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver on loopback, on free ports, in a temporary directory, with
// a CA and serving certificate of its own, static token users (an admin in
// system:masters and a restricted user with no rights) and a client
// certificate for kubeconfig tests. Everything is stopped and removed in
// t.Cleanup, also when the test fails (and then the servers' log tails are
// printed).
//
// The binaries come from hack/k8s-bins.sh, which builds kube-apiserver and
// kubectl once per version into a cache outside the repo (or from
// $VENI_K8S_BIN, a directory holding kube-apiserver, kubectl and etcd).
// When they cannot be had, Start skips the test with the reason, unless
// VENI_REQUIRE_PRIVILEGED=1, which makes it fail instead (CI sets it so a
// broken build cannot pass as skipped).
//
// Only tests may import this package. It imports kube but never client-go:
// tests that compare with client-go build their rest.Config from REST().
// It must not touch anything outside its temporary directory and the
// processes it starts.
package kubetest
