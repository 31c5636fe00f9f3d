package proxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Serve answers plain HTTP on ln until Shutdown or Close. With Config.ACME
// set it also answers ACME HTTP-01 challenges. It returns
// http.ErrServerClosed after Shutdown or Close.
func (rt *Router) Serve(ln net.Listener) error {
	var h http.Handler = rt
	if rt.acme.mgr != nil {
		h = rt.acme.mgr.HTTPHandler(rt)
	}
	srv := rt.newServer(h)
	if srv == nil {
		ln.Close()
		return http.ErrServerClosed
	}
	defer rt.forget(srv)
	lln := newLimitListener(ln, rt.cfg.MaxConns, rt.cfg.ClientWriteTimeout)
	if rt.noFrontEnd {
		return srv.Serve(lln)
	}
	fe := rt.newFrontend(srv, lln)
	rt.srvMu.Lock()
	select {
	case <-rt.done:
		rt.srvMu.Unlock()
		lln.Close()
		return http.ErrServerClosed
	default:
	}
	rt.fronts[fe] = struct{}{}
	rt.srvMu.Unlock()
	defer func() {
		rt.srvMu.Lock()
		delete(rt.fronts, fe)
		rt.srvMu.Unlock()
	}()
	return fe.serve()
}

// ServeTLS answers HTTPS (HTTP/2 and HTTP/1.1) on ln until Shutdown or
// Close, with certificates from Config.ACME or Config.GetCertificate.
func (rt *Router) ServeTLS(ln net.Listener) error {
	tc := rt.tlsConfig()
	if tc == nil {
		ln.Close()
		return errors.New("proxy: ServeTLS needs Config.ACME or Config.GetCertificate")
	}
	srv := rt.newServer(rt)
	if srv == nil {
		ln.Close()
		return http.ErrServerClosed
	}
	defer rt.forget(srv)
	srv.TLSConfig = tc
	return srv.ServeTLS(newLimitListener(ln, rt.cfg.MaxConns, rt.cfg.ClientWriteTimeout), "", "")
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (rt *Router) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return rt.Serve(ln)
}

// ListenAndServeTLS listens on the TCP address addr and calls ServeTLS.
func (rt *Router) ListenAndServeTLS(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return rt.ServeTLS(ln)
}

func (rt *Router) newServer(h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rt.cfg.ReadHeaderTimeout,
		IdleTimeout:       rt.cfg.ClientIdleTimeout,
		MaxHeaderBytes:    rt.cfg.MaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	rt.srvMu.Lock()
	defer rt.srvMu.Unlock()
	select {
	case <-rt.done:
		return nil
	default:
	}
	rt.servers[srv] = struct{}{}
	return srv
}

func (rt *Router) forget(srv *http.Server) {
	rt.srvMu.Lock()
	delete(rt.servers, srv)
	rt.srvMu.Unlock()
}

// Shutdown stops the router gracefully: its servers stop accepting and
// wait for in-flight requests (up to ctx), then upgraded connections and
// connections to instances are closed and the health checks stop. The
// router routes no more requests afterwards.
func (rt *Router) Shutdown(ctx context.Context) error {
	servers, fronts := rt.stop()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	record := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	for _, fe := range fronts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			record(fe.shutdown(ctx))
		}()
	}
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			record(srv.Shutdown(ctx))
		}()
	}
	wg.Wait()
	rt.closeBackends()
	// Upgraded connections end once their instance connection is closed.
	for rt.hijacked.Load() > 0 {
		select {
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			return errors.Join(errs...)
		case <-time.After(5 * time.Millisecond):
		}
	}
	rt.wg.Wait()
	return errors.Join(errs...)
}

// Close stops the router at once: servers close their connections, every
// connection to instances is closed, and health checks stop.
func (rt *Router) Close() error {
	var errs []error
	servers, fronts := rt.stop()
	for _, fe := range fronts {
		fe.close()
	}
	for _, srv := range servers {
		errs = append(errs, srv.Close())
	}
	rt.closeBackends()
	rt.wg.Wait()
	return errors.Join(errs...)
}

// stop marks the router closed and returns its servers and front ends.
func (rt *Router) stop() ([]*http.Server, []*frontend) {
	rt.ctlMu.Lock()
	rt.closed = true
	rt.ctlMu.Unlock()
	rt.srvMu.Lock()
	rt.closeOnce.Do(func() { close(rt.done) })
	servers := make([]*http.Server, 0, len(rt.servers))
	for s := range rt.servers {
		servers = append(servers, s)
	}
	fronts := make([]*frontend, 0, len(rt.fronts))
	for fe := range rt.fronts {
		fronts = append(fronts, fe)
	}
	rt.srvMu.Unlock()
	return servers, fronts
}

func (rt *Router) closeBackends() {
	for _, r := range rt.table.Load().apps {
		for _, b := range r.backends {
			b.forceClose()
		}
	}
	rt.healthClient.CloseIdleConnections()
}

// limitListener holds at most n accepted connections at once, and gives
// their writes a rolling deadline.
type limitListener struct {
	net.Listener
	sem    chan struct{}
	done   chan struct{}
	once   sync.Once
	window time.Duration // Config.ClientWriteTimeout
	slack  time.Duration // how stale a write deadline may get
}

func newLimitListener(ln net.Listener, n int, window time.Duration) net.Listener {
	return &limitListener{
		Listener: ln,
		sem:      make(chan struct{}, n),
		done:     make(chan struct{}),
		window:   window,
		// As for the front end's idle timeout: a sixteenth of the
		// window, at most a second.
		slack: min(window/16, time.Second),
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn is a client connection. Every Write gets a deadline of
// Config.ClientWriteTimeout from its start: a rolling window, so a long
// download or stream that keeps moving is never cut, while a client that
// takes nothing (its TCP window closed) frees the connection, its goroutine
// and the instance's request. Doing it here covers every writer at once:
// the front end, net/http's server after a hand-off (whose WriteTimeout is
// an absolute deadline for the whole response, and whose
// ResponseController.SetWriteDeadline would need a call per flush and miss
// net/http's own writes), TLS, HTTP/2 and hijacked (upgraded) connections.
//
// A deadline is re-armed only when it would move by more than the
// listener's slack, so a busy connection costs a time.Now per write and a
// timer update at most once a second; a write may thus be cut after
// window-slack without progress. The deadline is kept on the monotonic
// clock, so a wall-clock step cannot stall the re-arming.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
	// wdl is the write deadline Write last set, in nanoseconds since
	// clockBase; 0 when none is known, explicitDeadline while the
	// connection's user has set one of its own.
	wdl atomic.Int64
}

// explicitDeadline marks a write deadline set through SetWriteDeadline,
// which Write leaves alone until it is cleared.
const explicitDeadline = -1

// clockBase is the origin of limitConn's monotonic deadlines.
var clockBase = time.Now()

func (c *limitConn) Write(p []byte) (int, error) {
	if d := c.wdl.Load(); d != explicitDeadline {
		now := time.Now()
		if want := int64(now.Sub(clockBase) + c.l.window); want-d > int64(c.l.slack) {
			c.Conn.SetWriteDeadline(now.Add(c.l.window))
			c.wdl.Store(want)
		}
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline sets a deadline that replaces the rolling one (net/http
// does so for TLS handshakes and for http.ResponseController); clearing it
// brings the rolling deadline back. net/http clears the write deadline
// after every response: the rolling one is then kept as it is.
func (c *limitConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		if c.wdl.Load() != explicitDeadline {
			return nil
		}
		err := c.Conn.SetWriteDeadline(t)
		c.wdl.Store(0)
		return err
	}
	c.wdl.Store(explicitDeadline)
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets the read deadline and, as SetWriteDeadline does, the
// write deadline.
func (c *limitConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *limitConn) release() { <-c.l.sem }
