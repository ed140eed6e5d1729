package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// Lists are decoded as a stream, one item at a time: a json.Decoder
// buffers only the value it is decoding, so the peak memory of a list is
// one item plus what the caller keeps, not the whole response (the watch
// cache answers resourceVersion=0 lists in one piece, ignoring limit: for
// 1,000 NetworkPolicies with kubectl's last-applied annotation that is
// megabytes of JSON).

// ObjectList is any list kind (PodList, NodeList, ...).
type ObjectList[T any] struct {
	TypeMeta `json:",inline"`
	ListMeta `json:"metadata"`
	Items    []T `json:"items"`
}

// List returns one page of objects in namespace ("" for all namespaces or a
// cluster-scoped resource). Page on with opts.Continue = list.Continue, or
// use ListAll.
func List[T any](ctx context.Context, c *Client, r Resource[T], namespace string, opts ListOptions) (*ObjectList[T], error) {
	out := new(ObjectList[T])
	lm, err := listPage(ctx, c, r, namespace, opts, func(o *T) { out.Items = append(out.Items, *o) })
	if err != nil {
		return nil, err
	}
	out.ListMeta = lm
	out.APIVersion, out.Kind = r.APIVersion(), r.Kind+"List"
	return out, nil
}

// ListAll lists every object, opts.Limit (0: 500) at a time, and returns
// them with the resourceVersion of the first page (the snapshot all pages
// belong to). If a continue token expires mid-way (410), it starts over
// once with a full, unpaged list, as client-go's pager does.
func ListAll[T any](ctx context.Context, c *Client, r Resource[T], namespace string, opts ListOptions) (*ObjectList[T], error) {
	out := new(ObjectList[T])
	lm, err := listEach(ctx, c, r, namespace, opts,
		func(o *T) { out.Items = append(out.Items, *o) },
		func() { out.Items = out.Items[:0] })
	if err != nil {
		return nil, err
	}
	out.ListMeta = lm
	out.APIVersion, out.Kind = r.APIVersion(), r.Kind+"List"
	return out, nil
}

// listEach pages through a list like ListAll, handing each object, in its
// own allocation, to each. If the list has to start over, reset is called
// first, so the caller can drop what it was given.
func listEach[T any](ctx context.Context, c *Client, r Resource[T], namespace string, opts ListOptions, each func(*T), reset func()) (ListMeta, error) {
	if opts.Limit <= 0 {
		opts.Limit = 500
	}
	opts.Continue = ""
	var first ListMeta
	for {
		lm, err := listPage(ctx, c, r, namespace, opts, each)
		if err != nil {
			if IsGone(err) && opts.Continue != "" {
				reset()
				opts.Continue, opts.Limit = "", 0
				return listPage(ctx, c, r, namespace, opts, each)
			}
			return ListMeta{}, err
		}
		if opts.Continue == "" {
			first = lm
		}
		if lm.Continue == "" {
			first.Continue, first.RemainingItemCount = "", nil
			return first, nil
		}
		opts.Continue = lm.Continue
		// A continued page must not carry resourceVersion options.
		opts.ResourceVersion, opts.ResourceVersionMatch = "", ""
	}
}

// listPage requests one page and streams its items to each.
func listPage[T any](ctx context.Context, c *Client, r Resource[T], namespace string, opts ListOptions, each func(*T)) (ListMeta, error) {
	req := r.req("list", "GET", namespace, "")
	req.query = opts.query(false)
	resp, cancel, err := c.do(ctx, req)
	if err != nil {
		return ListMeta{}, err
	}
	defer cancel()
	defer resp.Body.Close()
	lm, err := decodeList(json.NewDecoder(resp.Body), each)
	if err != nil {
		return ListMeta{}, fmt.Errorf("kube list %s: decode: %w", req.resourceName(), err)
	}
	return lm, nil
}

// decodeList reads {"metadata": {...}, "items": [...], ...} in any key
// order, handing each item to each and skipping other keys.
func decodeList[T any](dec *json.Decoder, each func(*T)) (ListMeta, error) {
	var lm ListMeta
	if err := expectDelim(dec, '{'); err != nil {
		return lm, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return lm, err
		}
		key, _ := tok.(string)
		switch key {
		case "metadata":
			if err := dec.Decode(&lm); err != nil {
				return lm, err
			}
		case "items":
			if err := decodeItems(dec, each); err != nil {
				return lm, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return lm, err
			}
		}
	}
	return lm, expectDelim(dec, '}')
}

func decodeItems[T any](dec *json.Decoder, each func(*T)) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // "items": null
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("items: want an array, got %v", tok)
	}
	for dec.More() {
		o := new(T)
		if err := dec.Decode(o); err != nil {
			return err
		}
		each(o)
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}
