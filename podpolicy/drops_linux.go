package podpolicy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/veni-cni/veni/config"
	"github.com/veni-cni/veni/ebpf/enforce"
	"github.com/veni-cni/veni/store"
)

// DropEvent is a packet the enforcer dropped, with the pod whose endpoint
// dropped it ("" when no allocation names the veth any more).
type DropEvent struct {
	enforce.Drop
	Pod string `json:"pod,omitempty"`
}

func (d DropEvent) String() string {
	pod := d.Pod
	if pod == "" {
		pod = fmt.Sprintf("ifindex %d", d.Ifindex)
	}
	return fmt.Sprintf("%s %s %s %s -> %s %s", d.Time.Format(time.TimeOnly), pod, d.Direction, d.Protocol, d.Src, d.Dst) + " (" + d.Reason.String() + ")"
}

// DropStream reads the node's drop events. The ring buffer has one read
// position: run one stream per node at a time.
type DropStream struct {
	db   store.File
	k    NodeKernel
	r    *enforce.DropReader
	pods map[int]string // host ifindex → pod
}

// OpenDrops opens the drop events of the node's enforcer. It returns an
// error wrapping ErrNoEnforcer when the node never enforced a policy.
func OpenDrops(db store.File, cfg config.Config, instanceID string) (*DropStream, error) {
	k, err := OpenNodeKernelIfUsed(cfg, instanceID)
	if err != nil {
		return nil, err
	}
	r, err := k.(enforcerKernel).e.Drops()
	if err != nil {
		k.Close()
		return nil, err
	}
	return &DropStream{db: db, k: k, r: r}, nil
}

// Next blocks until the next drop, ctx's end or deadline (then it returns
// ctx's error).
func (s *DropStream) Next(ctx context.Context) (DropEvent, error) {
	stop := context.AfterFunc(ctx, func() { s.r.SetDeadline(time.Now()) })
	defer stop()
	d, err := s.r.Read()
	if err != nil {
		if ctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, enforce.ErrClosed)) {
			return DropEvent{}, ctx.Err()
		}
		return DropEvent{}, err
	}
	ev := DropEvent{Drop: d, Pod: s.pod(d.Ifindex)}
	return ev, nil
}

// pod names the pod on host veth ifindex, reading the store again when
// the veth is new to the stream.
func (s *DropStream) pod(ifindex int) string {
	if p, ok := s.pods[ifindex]; ok {
		return p
	}
	s.pods, _ = podsByVeth(s.db)
	return s.pods[ifindex]
}

// Close stops the stream.
func (s *DropStream) Close() error { return errors.Join(s.r.Close(), s.k.Close()) }
