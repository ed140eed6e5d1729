package kube

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeList_Shapes(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		names string
		rv    string
		bad   bool
	}{
		{"usual order", `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5","continue":"c"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}`, "a,b", "5", false},
		{"items first, unknown keys", `{"items":[{"metadata":{"name":"a"},"extra":{"x":[1,2]}}],"weird":[{"a":null}],"metadata":{"resourceVersion":"6"}}`, "a", "6", false},
		{"null items", `{"metadata":{"resourceVersion":"7"},"items":null}`, "", "7", false},
		{"empty items", `{"metadata":{"resourceVersion":"8"},"items":[]}`, "", "8", false},
		{"not an object", `[1]`, "", "", true},
		{"truncated", `{"metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"a"}}`, "", "", true},
		{"items not an array", `{"items":{"a":1}}`, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			lm, err := decodeList(json.NewDecoder(strings.NewReader(tc.body)), func(p *Pod) { names = append(names, p.Name) })
			if tc.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || strings.Join(names, ",") != tc.names || lm.ResourceVersion != tc.rv {
				t.Errorf("names %v rv %q err %v", names, lm.ResourceVersion, err)
			}
		})
	}
}

// TestListAll_ContinueExpired: when the continue token of page 2 has
// expired (410), ListAll starts over with one unpaged list and returns
// only what that list holds.
func TestListAll_ContinueExpired(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		calls = append(calls, q.Encode())
		switch {
		case q.Get("continue") == "" && q.Get("limit") == "2":
			_, _ = w.Write([]byte(`{"metadata":{"resourceVersion":"10","continue":"tok"},"items":[{"metadata":{"name":"gone-later"}},{"metadata":{"name":"b"}}]}`))
		case q.Get("continue") == "tok":
			w.WriteHeader(410)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"continue token expired"}`))
		case q.Get("limit") == "":
			_, _ = w.Write([]byte(`{"metadata":{"resourceVersion":"20"},"items":[{"metadata":{"name":"b"}},{"metadata":{"name":"c"}}]}`))
		default:
			http.Error(w, "unexpected "+q.Encode(), 400)
		}
	}))
	defer srv.Close()
	c, _ := New(&Config{Host: srv.URL, QPS: -1})
	l, err := ListAll(context.Background(), c, Pods, "ns", ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Items {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "b,c" || l.ResourceVersion != "20" || len(calls) != 3 {
		t.Errorf("items %v rv %s after calls %v", names, l.ResourceVersion, calls)
	}
}
