package crictest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Client speaks the CRI (runtime.v1) to one runtime over its gRPC socket,
// as kubelet does, and remembers how long each successful call took.
// It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient

	mu   sync.Mutex
	took map[string][]time.Duration // by CRI method name
}

// Dial returns a client of the CRI served on the unix socket at path. It
// does not connect until the first call.
func Dial(path string) (*Client, error) {
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cri client for %s: %w", path, err)
	}
	return &Client{
		conn: conn,
		rt:   runtimeapi.NewRuntimeServiceClient(conn),
		img:  runtimeapi.NewImageServiceClient(conn),
		took: make(map[string][]time.Duration),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// timed runs call and records its duration under method when it succeeds.
func (c *Client) timed(method string, call func() error) error {
	start := time.Now()
	if err := call(); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	took := time.Since(start)
	c.mu.Lock()
	c.took[method] = append(c.took[method], took)
	c.mu.Unlock()
	return nil
}

// Latencies returns how long each successful call of method
// ("RunPodSandbox", ...) took, in call order.
func (c *Client) Latencies(method string) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.took[method])
}

// ResetLatencies forgets the recorded latencies.
func (c *Client) ResetLatencies() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.took)
}

// Quantile returns the q-quantile (0..1, nearest rank) of ds, or 0 for none.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Status is the runtime's readiness (RuntimeReady, NetworkReady).
func (c *Client) Status(ctx context.Context) (*runtimeapi.RuntimeStatus, error) {
	var resp *runtimeapi.StatusResponse
	err := c.timed("Status", func() (err error) {
		resp, err = c.rt.Status(ctx, &runtimeapi.StatusRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

// RunPodSandbox creates and starts a sandbox (ADD of its networks
// included) with the default runtime handler and returns its id.
func (c *Client) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig) (string, error) {
	var resp *runtimeapi.RunPodSandboxResponse
	err := c.timed("RunPodSandbox", func() (err error) {
		resp, err = c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		return err
	})
	if err != nil {
		return "", err
	}
	return resp.GetPodSandboxId(), nil
}

// PodSandboxStatus returns the sandbox's status; verbose adds the runtime's
// info (for containerd: its OCI spec, pid and CNI result, as JSON).
func (c *Client) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	var resp *runtimeapi.PodSandboxStatusResponse
	err := c.timed("PodSandboxStatus", func() (err error) {
		resp, err = c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: verbose})
		return err
	})
	return resp, err
}

// StopPodSandbox stops the sandbox's processes and tears its network down
// (DEL with the netns). Stopping a stopped sandbox succeeds.
func (c *Client) StopPodSandbox(ctx context.Context, id string) error {
	return c.timed("StopPodSandbox", func() error {
		_, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		return err
	})
}

// RemovePodSandbox removes a sandbox (containerd 1.6 sends DEL again,
// without the netns). Removing a removed sandbox succeeds.
func (c *Client) RemovePodSandbox(ctx context.Context, id string) error {
	return c.timed("RemovePodSandbox", func() error {
		_, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
}

// ListPodSandbox lists the sandboxes that match filter (nil: all).
func (c *Client) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	var resp *runtimeapi.ListPodSandboxResponse
	err := c.timed("ListPodSandbox", func() (err error) {
		resp, err = c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetItems(), nil
}

// ImageStatus returns the image ref names, or nil when the runtime does
// not have it.
func (c *Client) ImageStatus(ctx context.Context, ref string) (*runtimeapi.Image, error) {
	var resp *runtimeapi.ImageStatusResponse
	err := c.timed("ImageStatus", func() (err error) {
		resp, err = c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetImage(), nil
}
