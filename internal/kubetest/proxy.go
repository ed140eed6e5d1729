package kubetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of the API server that a test can cut: it
// passes TLS through untouched (the serving certificate covers 127.0.0.1),
// so a client pointed at Proxy.Host sees a real network failure.
type Proxy struct {
	// Host is the URL to give clients instead of Cluster.Host.
	Host string

	l      net.Listener
	target string

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// NewProxy starts a proxy to the cluster's API server, closed when tb ends.
func (c *Cluster) NewProxy(tb testing.TB) *Proxy {
	tb.Helper()
	u, err := url.Parse(c.Host)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("kubetest: proxy: %v", err)
	}
	p := &Proxy{Host: "https://" + l.Addr().String(), l: l, target: u.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

// Block cuts every open connection and refuses new ones (accepted, then
// closed at once) until Unblock.
func (p *Proxy) Block() {
	p.mu.Lock()
	p.blocked = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Unblock lets connections through again.
func (p *Proxy) Unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

// Conns returns the number of client connections open now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.l.Close()
	p.Block()
	p.wg.Wait()
}
