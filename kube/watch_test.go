package kube

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWatcher_Next_Frames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("watch") != "true" || q.Get("allowWatchBookmarks") != "true" || q.Get("resourceVersion") != "7" || q.Get("timeoutSeconds") != "30" ||
			q.Get("labelSelector") != "app=web" || q.Get("fieldSelector") != "spec.nodeName=n1" {
			http.Error(w, "bad query "+r.URL.RawQuery, 400)
			return
		}
		_, _ = w.Write([]byte(`{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","resourceVersion":"8"}}}
{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","resourceVersion":"9"},"status":{"podIP":"10.0.0.1"}}}
{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12"}}}
{"type":"DELETED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"ns","resourceVersion":"13"}}}
{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 7 (10)","reason":"Expired","code":410}}
`))
	}))
	defer srv.Close()
	c, _ := New(&Config{Host: srv.URL})
	w, err := Watch(context.Background(), c, Pods, "ns", ListOptions{ResourceVersion: "7", AllowWatchBookmarks: true, TimeoutSeconds: 30, LabelSelector: "app=web", FieldSelector: "spec.nodeName=n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := []struct {
		typ EventType
		rv  string
	}{{Added, "8"}, {Modified, "9"}, {Bookmark, "12"}, {Deleted, "13"}}
	for _, wt := range want {
		ev, err := w.Next()
		if err != nil || ev.Type != wt.typ || ev.Object.ResourceVersion != wt.rv {
			t.Fatalf("got %v %+v, want %s at %s", err, ev, wt.typ, wt.rv)
		}
	}
	_, err = w.Next()
	if !IsGone(err) {
		t.Fatalf("ERROR event: %v, want Gone", err)
	}
	if _, err = w.Next(); !errors.Is(err, ErrWatchClosed) {
		t.Fatalf("end of stream: %v, want ErrWatchClosed", err)
	}
}

func TestAPIError_Error_Cases(t *testing.T) {
	tests := []struct {
		name string
		err  *APIError
		want string
	}{
		{"forbidden names verb and resource", &APIError{Verb: "list", Resource: "networkpolicies.networking.k8s.io", Status: Status{Code: 403, Reason: ReasonForbidden, Message: "denied"}},
			`kube list networkpolicies.networking.k8s.io: denied (403 Forbidden) (RBAC: the identity needs verb "list" on resource "networkpolicies.networking.k8s.io")`},
		{"not found names the object", &APIError{Verb: "get", Resource: "pods", Namespace: "ns", Name: "p", Status: Status{Code: 404, Reason: ReasonNotFound, Message: `pods "p" not found`}},
			`kube get pods ns/p: pods "p" not found (404 NotFound)`},
		{"no message: status text", &APIError{Verb: "watch", Resource: "pods", Namespace: "ns", Status: Status{Code: 503}},
			`kube watch pods in namespace ns: Service Unavailable (503)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	if !IsGone(&APIError{Status: Status{Code: 410}}) || !IsGone(&APIError{Status: Status{Code: 500, Reason: ReasonExpired}}) {
		t.Error("IsGone")
	}
	if IsNotFound(errors.New("x")) || !IsConflict(&APIError{Status: Status{Code: 409}}) {
		t.Error("IsNotFound/IsConflict on plain errors and codes")
	}
}

func TestClient_Do_NonStatusError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream proxy says no", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := New(&Config{Host: srv.URL})
	_, err := Get(context.Background(), c, Nodes, "", "n1")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status.Code != 502 || ae.Status.Message != "upstream proxy says no" || ae.Name != "n1" {
		t.Fatalf("%#v", err)
	}
}

func TestBackoff_Next_JitteredAndCapped(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	step := 100 * time.Millisecond
	for i := range 8 {
		d := b.next()
		lo, hi := step, 2*step
		if hi > time.Second {
			hi = time.Second
		}
		if lo > time.Second {
			lo = time.Second
		}
		if d < lo || d > hi {
			t.Errorf("attempt %d: %s outside [%s, %s]", i, d, lo, hi)
		}
		step *= 2
	}
	b.reset()
	if d := b.next(); d > 200*time.Millisecond {
		t.Errorf("after reset: %s", d)
	}
}
