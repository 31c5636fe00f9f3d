package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

// respWriter wraps the client's ResponseWriter to see the status, count
// bytes and receive the proxy's error.
type respWriter struct {
	w           http.ResponseWriter
	rt          *Router
	status      int
	bytes       int64
	wroteHeader bool
	writeErr    bool
	writeIdle   bool // a write ran into Config.ClientWriteTimeout
	hijacked    bool
	err         error // set by proxyErrorHandler
}

var (
	_ http.ResponseWriter = (*respWriter)(nil)
	_ http.Flusher        = (*respWriter)(nil)
	_ http.Hijacker       = (*respWriter)(nil)
)

func (w *respWriter) Header() http.Header { return w.w.Header() }

func (w *respWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.w.WriteHeader(code) // informational: more headers follow
		return
	}
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	w.status = code
	w.w.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.w.Write(p)
	w.bytes += int64(n)
	if err != nil {
		w.noteWriteErr(err)
	}
	return n, err
}

// Flush sends buffered data to the client.
func (w *respWriter) Flush() { _ = w.FlushError() }

// FlushError sends buffered data to the client (http.ResponseController).
func (w *respWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := http.NewResponseController(w.w).Flush()
	if err != nil {
		w.noteWriteErr(err)
	}
	return err
}

// noteWriteErr records that writing to the client failed, and whether it
// was the client write deadline.
func (w *respWriter) noteWriteErr(err error) {
	w.writeErr = true
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.writeIdle = true
	}
}

// clientCode is the code of a request whose client connection failed.
func (w *respWriter) clientCode() Code {
	if w.writeIdle {
		return CodeClientIdle
	}
	return CodeClientInterrupted
}

// Hijack takes over the client connection, for protocol upgrades.
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.w).Hijack()
	if err == nil {
		w.hijacked = true
		w.wroteHeader = true
		w.status = http.StatusSwitchingProtocols
		w.rt.hijacked.Add(1)
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the client's ResponseWriter.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.w }

var errBodyTooLarge = errors.New("proxy: request body too large")

// countingBody counts request body bytes and enforces MaxBodyBytes. The
// transport may read it from its own goroutine, so the counters are atomic.
type countingBody struct {
	rc       io.ReadCloser
	max      int64 // 0: no limit
	n        atomic.Int64
	tooLarge atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.max > 0 {
		left := b.max - b.n.Load()
		if left < 0 {
			b.tooLarge.Store(true)
			return 0, errBodyTooLarge
		}
		if int64(len(p)) > left+1 {
			p = p[:left+1]
		}
	}
	n, err := b.rc.Read(p)
	total := b.n.Add(int64(n))
	if b.max > 0 && total > b.max {
		b.tooLarge.Store(true)
		return 0, errBodyTooLarge
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// read is the number of body bytes read so far; 0 for a nil body.
func (b *countingBody) read() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// bufferPool is an httputil.BufferPool over a bounded free list.
type bufferPool struct {
	size int
	free chan []byte
}

func newBufferPool(size, n int) *bufferPool {
	return &bufferPool{size: size, free: make(chan []byte, n)}
}

func (p *bufferPool) Get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, p.size)
	}
}

func (p *bufferPool) Put(b []byte) {
	if cap(b) != p.size {
		return
	}
	select {
	case p.free <- b[:p.size]:
	default:
	}
}
