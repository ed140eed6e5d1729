package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// EventType is the type of a watch event.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	Bookmark EventType = "BOOKMARK" // Object has only metadata.resourceVersion (and annotations)
	Error    EventType = "ERROR"    // never returned by Next: it becomes an *APIError
)

// WatchEvent is one change seen by a watch.
type WatchEvent[T any] struct {
	Type   EventType
	Object *T
}

// Watcher reads one watch stream. It is not safe for concurrent use.
type Watcher[T any] struct {
	resp   *http.Response
	dec    *json.Decoder
	cancel context.CancelFunc
	req    *request
}

// Watch opens a watch on namespace ("" for all namespaces or a
// cluster-scoped resource) starting after opts.ResourceVersion. The stream
// ends when the server's opts.TimeoutSeconds passes, the connection drops,
// or ctx ends. May return an error for which IsGone is true when the
// resourceVersion is too old (list again).
func Watch[T any](ctx context.Context, c *Client, r Resource[T], namespace string, opts ListOptions) (*Watcher[T], error) {
	req := r.req("watch", "GET", namespace, "")
	req.query, req.watch = opts.query(true), true
	ctx, cancel := context.WithCancel(ctx)
	resp, _, err := c.do(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	return &Watcher[T]{resp: resp, dec: json.NewDecoder(resp.Body), cancel: cancel, req: req}, nil
}

// watchFrame is the wire form of a watch event (metav1.WatchEvent).
type watchFrame struct {
	Type   EventType       `json:"type"`
	Object json.RawMessage `json:"object"`
}

// Next blocks for the next event. At the end of the stream it returns an
// error wrapping ErrWatchClosed (io.EOF from a server timeout, or the
// connection's error). An ERROR event is returned as an *APIError built
// from its Status: IsGone(err) means "too old resourceVersion, list again".
func (w *Watcher[T]) Next() (WatchEvent[T], error) {
	var f watchFrame
	if err := w.dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return WatchEvent[T]{}, fmt.Errorf("kube watch %s: %w", w.req.resourceName(), ErrWatchClosed)
		}
		return WatchEvent[T]{}, fmt.Errorf("kube watch %s: %w: %w", w.req.resourceName(), ErrWatchClosed, err)
	}
	if f.Type == Error {
		ae := &APIError{Verb: "watch", Resource: w.req.resourceName(), Namespace: w.req.namespace}
		if err := json.Unmarshal(f.Object, &ae.Status); err != nil {
			return WatchEvent[T]{}, fmt.Errorf("kube watch %s: decode error event: %w", w.req.resourceName(), err)
		}
		ae.Status.Reason = ae.Reason()
		return WatchEvent[T]{}, ae
	}
	obj := new(T)
	if err := json.Unmarshal(f.Object, obj); err != nil {
		return WatchEvent[T]{}, fmt.Errorf("kube watch %s: decode %s event: %w", w.req.resourceName(), f.Type, err)
	}
	return WatchEvent[T]{Type: f.Type, Object: obj}, nil
}

// Close ends the stream. Safe to call more than once.
func (w *Watcher[T]) Close() error {
	w.cancel()
	return w.resp.Body.Close()
}
