// Package kube is veni's own small Kubernetes client: configuration
// (in-cluster or kubeconfig), typed JSON objects holding only the fields
// veni reads and writes, the REST verbs (get, list, watch, create, update,
// patch, delete, status subresource), an informer (list then watch, with a
// cache), leader election on a coordination.k8s.io/v1 Lease and an event
// recorder.
//
// Why not client-go: veni is one binary that is also the CNI plugin, so every
// linked package's init runs in every CNI call, on the pod's critical path.
// client-go's typed clientset costs ~8.5 ms of init there and k8s.io/api
// alone ~2.5 ms; the budget for all Kubernetes and metrics code is +0.5 ms.
// This package uses only the standard library (net/http, encoding/json) plus
// a YAML decoder for kubeconfig files, and keeps its own init free: no
// package-level maps, regexps or computed tables. Only _test.go files may
// import k8s.io/*; `go list -deps github.com/veni-cni/veni | grep k8s.io`
// must stay empty.
//
// Field names are the official API names, so objects round-trip with
// kubectl and client-go; fields veni does not use are not decoded at all,
// which keeps an informer's cache small (1,000 NetworkPolicies cost about a
// megabyte, see BenchmarkInformer_Cache).
//
// Rules:
//   - Objects handed out by an Informer are shared with its cache and must
//     be treated as read-only; copy before changing.
//   - Informer handlers run on the informer's goroutine, one at a time; a
//     handler that blocks stalls that informer (not others).
//   - Recorder.Event never blocks: a full queue drops the event and counts
//     it.
//   - Nothing in this package touches the store, the network datapath or the
//     cloud: it only talks to the API server.
//
// Errors from the API server are *APIError values carrying the server's
// metav1.Status (reason, code, message) and the request's verb and
// resource; test them with IsNotFound, IsConflict, IsGone, IsForbidden.
package kube
