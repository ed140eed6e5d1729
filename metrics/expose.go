package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ContentType is the Prometheus text exposition format this package writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// DefaultSocket is where the daemon serves metrics unless configured
// otherwise: a unix socket, so no port is open by default.
const DefaultSocket = "/run/veni/metrics.sock"

// WriteTo runs the OnCollect hooks, then writes every family in the text
// format 0.0.4, families sorted by name and series by label values.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	hooks := append([]func(){}, r.hooks...)
	fams := make([]*family, 0, len(r.fams))
	for _, f := range r.fams {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	for _, h := range hooks {
		h()
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })

	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	var buf []byte
	for _, f := range fams {
		buf = f.appendText(buf[:0])
		if _, err := bw.Write(buf); err != nil {
			return cw.n, err
		}
	}
	err := bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// appendText appends one family: HELP, TYPE, then its samples.
func (f *family) appendText(b []byte) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, f.typ...)
	b = append(b, '\n')
	if f.fn != nil {
		return appendSample(b, f.name, nil, nil, "", "", f.fn())
	}
	f.mu.RLock()
	ss := make([]*series, 0, len(f.series))
	for _, s := range f.series {
		ss = append(ss, s)
	}
	f.mu.RUnlock()
	sort.Slice(ss, func(i, j int) bool { return labelKey(ss[i].values) < labelKey(ss[j].values) })
	for _, s := range ss {
		switch f.typ {
		case typeCounter:
			b = appendSample(b, f.name, f.labels, s.values, "", "", s.c.Get())
		case typeGauge:
			b = appendSample(b, f.name, f.labels, s.values, "", "", s.g.Get())
		case typeHistogram:
			cum, sum := s.h.snapshot()
			for i, le := range f.buckets {
				b = appendSample(b, f.name+"_bucket", f.labels, s.values, "le", formatFloat(le), float64(cum[i]))
			}
			total := float64(cum[len(cum)-1])
			b = appendSample(b, f.name+"_bucket", f.labels, s.values, "le", "+Inf", total)
			b = appendSample(b, f.name+"_sum", f.labels, s.values, "", "", sum)
			b = appendSample(b, f.name+"_count", f.labels, s.values, "", "", total)
		}
	}
	return b
}

// appendSample appends `name{l1="v1",...,extra="ev"} value\n`.
func appendSample(b []byte, name string, labels, values []string, extra, extraVal string, v float64) []byte {
	b = append(b, name...)
	if len(labels) > 0 || extra != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l...)
			b = append(b, `="`...)
			b = appendEscaped(b, values[i], true)
			b = append(b, '"')
		}
		if extra != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, extra...)
			b = append(b, `="`...)
			b = append(b, extraVal...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = append(b, formatFloat(v)...)
	return append(b, '\n')
}

// appendEscaped escapes backslash and newline (HELP text), and double
// quotes too in label values, as the text format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Handler returns an http.Handler that serves the registry on GET.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		if req.Method == http.MethodHead {
			return
		}
		_, _ = r.WriteTo(w)
	})
}

// Listen opens where metrics are served: a unix socket when addr is a path
// ("/run/veni/metrics.sock", or "unix:PATH"), else a TCP "host:port". A
// stale socket file is replaced; the socket is made 0660 so only root and
// the socket's group can scrape. The parent directory is created.
func Listen(addr string) (net.Listener, error) {
	path, isUnix := strings.CutPrefix(addr, "unix:")
	if !isUnix && strings.HasPrefix(addr, "/") {
		path, isUnix = addr, true
	}
	if !isUnix {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
		}
		return l, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("metrics listen %s: remove stale socket: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("metrics listen %s: %w", path, err)
	}
	return l, nil
}

// Serve serves h on l (at "/metrics" and "/") until ctx ends, then shuts
// down gracefully within 5 s. It returns nil after ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	mux.Handle("/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}
