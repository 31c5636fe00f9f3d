package proxy

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// backend is the live state of one instance. It is shared by every table
// version that routes to it.
type backend struct {
	id    string
	addr  string
	app   *appState
	limit int64

	inflight        atomic.Int64 // requests holding a slot, upgraded connections included
	quarantineUntil atomic.Int64 // unix nanoseconds; 0 when not quarantined
	unhealthy       atomic.Bool  // set by the active health check
	removed         atomic.Bool  // no longer in the table: draining
	failures        int          // consecutive failed checks; owned by the health loop

	transport *http.Transport
	proxy     *httputil.ReverseProxy

	poolMu sync.Mutex
	idle   []*fconn // the fast path's idle connections, most recent last

	mu         sync.Mutex
	conns      map[*trackedConn]struct{}
	drained    chan struct{} // closed once removed and idle
	closedOnce bool
	forced     bool
	drainTimer *time.Timer
}

func newBackend(rt *Router, app *appState, b Backend) *backend {
	limit := b.Concurrency
	if limit <= 0 {
		limit = rt.cfg.Concurrency
	}
	be := &backend{
		id:      b.ID,
		addr:    b.Addr,
		app:     app,
		limit:   int64(limit),
		conns:   make(map[*trackedConn]struct{}),
		drained: make(chan struct{}),
	}
	dialer := &net.Dialer{Timeout: rt.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	idle := rt.cfg.IdleTimeout
	be.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return be.track(c, idle), nil
		},
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   rt.cfg.MaxIdleConnsPerBackend,
		IdleConnTimeout:       idle,
		ResponseHeaderTimeout: rt.cfg.FirstByteTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
	be.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = be.addr
			rt.setForwarded(pr)
		},
		Transport:    be.transport,
		BufferPool:   rt.buffers,
		ErrorHandler: proxyErrorHandler,
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	return be
}

// eligible reports whether b may take new requests at now (unix ns).
func (b *backend) eligible(now int64) bool {
	return !b.unhealthy.Load() && b.quarantineUntil.Load() <= now
}

// tryAcquire takes a slot of b if one is free.
func (b *backend) tryAcquire() bool {
	for {
		n := b.inflight.Load()
		if n >= b.limit {
			return false
		}
		if b.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives a slot back and wakes a queued request.
func (b *backend) release() {
	n := b.inflight.Add(-1)
	if n == 0 && b.removed.Load() {
		b.finishDrain()
	}
	if b.app.queue.n.Load() > 0 {
		b.app.queue.wakeOne()
	}
}

// quarantine leaves b out for d.
func (b *backend) quarantine(d time.Duration) {
	b.quarantineUntil.Store(time.Now().Add(d).UnixNano())
}

// startDrain marks b as removed: it finishes when its last request does,
// and its connections are closed at timeout.
func (b *backend) startDrain(timeout time.Duration) {
	b.removed.Store(true)
	if b.inflight.Load() == 0 {
		b.finishDrain()
		return
	}
	b.mu.Lock()
	if !b.closedOnce {
		b.drainTimer = time.AfterFunc(timeout, b.forceClose)
	}
	b.mu.Unlock()
}

// finishDrain closes b's idle connections and signals drained waiters.
func (b *backend) finishDrain() {
	b.mu.Lock()
	if b.closedOnce {
		b.mu.Unlock()
		return
	}
	b.closedOnce = true
	if b.drainTimer != nil {
		b.drainTimer.Stop()
	}
	close(b.drained)
	b.mu.Unlock()
	b.transport.CloseIdleConnections()
	b.closeIdle()
}

// forceClose closes every connection to b, ending in-flight requests and
// upgraded connections.
func (b *backend) forceClose() {
	b.mu.Lock()
	if !b.closedOnce {
		b.forced = true
	}
	conns := make([]*trackedConn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	b.transport.CloseIdleConnections()
	b.closeIdle()
}

func (b *backend) track(c net.Conn, idle time.Duration) net.Conn {
	tc := &trackedConn{Conn: c, b: b, idle: idle}
	b.mu.Lock()
	b.conns[tc] = struct{}{}
	b.mu.Unlock()
	return tc
}

// trackedConn is a connection to a backend: it is closed when the backend's
// drain times out, and a read that waits longer than idle fails (H18).
type trackedConn struct {
	net.Conn
	b         *backend
	idle      time.Duration
	lastSet   int64       // unix ns of the last deadline push
	deadline  int64       // unix ns of the read deadline the fast path set
	manual    atomic.Bool // the fast path manages deadlines itself
	closeOnce sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	// Push the read deadline forward at most every idle/8, so that a
	// stream of reads costs one time.Now each, not a timer reset each.
	if c.manual.Load() {
		return c.Conn.Read(p)
	}
	now := time.Now()
	if ns := now.UnixNano(); ns-c.lastSet > int64(c.idle/8) {
		c.lastSet = ns
		c.deadline = 0
		c.Conn.SetReadDeadline(now.Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.b.mu.Lock()
		delete(c.b.conns, c)
		c.b.mu.Unlock()
	})
	return c.Conn.Close()
}
