package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The fast path forwards the common request, a GET, HEAD or OPTIONS with
// no body, no protocol upgrade and no Expect, on the handler's goroutine
// over a pooled HTTP/1.1 connection: no request clone and no hand-offs to
// the transport's reader and writer goroutines. Everything else goes
// through httputil.ReverseProxy.

// fastEligible reports whether req may take the fast path.
func fastEligible(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	if req.Body != nil && req.Body != http.NoBody || req.ContentLength != 0 {
		return false
	}
	if len(req.Header["Upgrade"]) > 0 || len(req.Header["Expect"]) > 0 || len(req.Header["Te"]) > 0 {
		return false
	}
	if c := req.Header["Connection"]; len(c) > 0 {
		// Connection may name more hop-by-hop headers; leave those
		// requests to ReverseProxy.
		if len(c) > 1 || !strings.EqualFold(c[0], "keep-alive") && !strings.EqualFold(c[0], "close") {
			return false
		}
	}
	return true
}

// skipRequestHeader lists the request headers the router drops or sets.
var skipRequestHeader = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Host": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true,
	"X-Forwarded-Proto": true, "X-Forwarded-Port": true,
	"X-Request-Id": true, "X-Request-Start": true, "Content-Length": true,
}

// skipResponseHeader lists the hop-by-hop response headers.
var skipResponseHeader = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// fconn is a pooled HTTP/1.1 connection to a backend.
type fconn struct {
	tc        *trackedConn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	fixed     fixedBody // the body of a lean response
}

// fixedBody reads a body of known length from a pooled connection.
type fixedBody struct {
	br *bufio.Reader
	n  int64 // bytes left
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// getConn returns an idle connection (reused=true) or dials a new one.
func (b *backend) getConn(ctx context.Context, rt *Router) (*fconn, bool, error) {
	now := time.Now()
	b.poolMu.Lock()
	for n := len(b.idle); n > 0; n = len(b.idle) {
		c := b.idle[n-1]
		b.idle[n-1] = nil
		b.idle = b.idle[:n-1]
		if now.Sub(c.idleSince) < rt.cfg.IdleTimeout/2 {
			b.poolMu.Unlock()
			return c, true, nil
		}
		b.poolMu.Unlock()
		c.tc.Close()
		b.poolMu.Lock()
	}
	b.poolMu.Unlock()
	d := net.Dialer{Timeout: rt.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return nil, false, err
	}
	tc := b.track(nc, rt.cfg.IdleTimeout).(*trackedConn)
	return &fconn{tc: tc, br: bufio.NewReaderSize(tc, 8<<10), bw: bufio.NewWriterSize(tc, 4<<10)}, false, nil
}

// putConn returns a connection to the idle pool, or closes it.
func (b *backend) putConn(c *fconn, max int) {
	c.idleSince = time.Now()
	b.poolMu.Lock()
	if len(b.idle) < max && !b.removed.Load() {
		b.idle = append(b.idle, c)
		b.poolMu.Unlock()
		return
	}
	b.poolMu.Unlock()
	c.tc.Close()
}

// closeIdle closes the pooled idle connections.
func (b *backend) closeIdle() {
	b.poolMu.Lock()
	idle := b.idle
	b.idle = nil
	b.poolMu.Unlock()
	for _, c := range idle {
		c.tc.Close()
	}
}

// errStale marks a reused connection that the backend had closed.
var errStale = errors.New("proxy: pooled connection was closed by the instance")

// serveFast forwards req to b and copies the response to st.rw. It
// returns an error only when nothing was written to the client yet; a
// failure after that aborts the response with http.ErrAbortHandler.
func (rt *Router) serveFast(st *reqState, b *backend, req *http.Request) error {
	ctx := req.Context()
	for try := 0; ; try++ {
		c, reused, err := b.getConn(ctx, rt)
		if err != nil {
			return err
		}
		err = rt.roundTrip(st, b, c, req)
		if err == errStale && reused && try == 0 {
			continue // replayable request on a stale connection: once more
		}
		return err
	}
}

func (rt *Router) roundTrip(st *reqState, b *backend, c *fconn, req *http.Request) error {
	ctx := req.Context()
	bw := c.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	if u := req.RequestURI; req.ProtoMajor == 1 && (strings.HasPrefix(u, "/") || u == "*") {
		bw.WriteString(req.RequestURI)
	} else {
		bw.WriteString(req.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if skipRequestHeader[k] {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	rt.writeForwarded(bw, req)
	bw.WriteString("X-Request-Id: ")
	bw.WriteString(st.obs.RequestID)
	bw.WriteString("\r\nX-Request-Start: ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), st.obs.Start.UnixMilli(), 10))
	bw.WriteString("\r\n\r\n")

	tc := c.tc
	tc.manual.Store(true)
	// No write deadline: the request is headers only (at most
	// MaxHeaderBytes), which the socket buffer takes without blocking.
	// Set the first-byte deadline, unless the one set for the previous
	// request on this connection is less than a second earlier: a
	// request in a busy stream then saves a timer update.
	now := time.Now()
	if want := now.Add(rt.cfg.FirstByteTimeout).UnixNano(); want-tc.deadline > int64(time.Second) || tc.deadline > want {
		tc.Conn.SetReadDeadline(now.Add(rt.cfg.FirstByteTimeout))
		tc.deadline = want
	}
	if err := bw.Flush(); err != nil {
		tc.Close()
		return errStale
	}
	// The client going away ends the wait for the response.
	watch, err := startWatch(ctx, st, tc)
	if err != nil {
		tc.Close()
		return err
	}

	var (
		res  *http.Response
		lean leanResponse
	)
	for {
		// The plainest responses are parsed here, straight into the
		// client's headers; http.ReadResponse reads the others.
		res = nil
		_, err := c.br.Peek(1)
		if err == nil && req.Method != http.MethodHead {
			b, _ := c.br.Peek(c.br.Buffered())
			if n := parseLeanResponse(b, st.rw.Header(), &lean); n > 0 {
				c.br.Discard(n)
				break
			}
		}
		if err == nil {
			res, err = http.ReadResponse(c.br, req)
		}
		if err != nil {
			watch.end()
			tc.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return err
			}
			if c.br.Buffered() == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF || isReset(err)) {
				return errStale
			}
			return err
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
			h := st.rw.Header()
			copyHeader(h, res.Header)
			st.rw.WriteHeader(res.StatusCode)
			clear(h) // informational headers are not repeated
			continue
		}
		break
	}
	// Stop watching the client before the connection can go back to the
	// pool; if the watch already fired, the client is gone.
	if !watch.end() {
		tc.Close()
		return context.Canceled
	}
	if res != nil && res.StatusCode == http.StatusSwitchingProtocols {
		tc.Close()
		return errors.New("proxy: instance switched protocols without an upgrade request")
	}
	// After the first byte, the rolling idle window applies.
	tc.lastSet = 0
	tc.manual.Store(false)

	h := st.rw.Header()
	var (
		body      io.Reader
		flush     bool
		closeConn bool
	)
	if res != nil {
		copyHeader(h, res.Header)
		st.rw.WriteHeader(res.StatusCode)
		body, flush, closeConn = res.Body, res.ContentLength == -1, res.Close
	} else {
		st.rw.WriteHeader(lean.status)
		c.fixed = fixedBody{br: c.br, n: lean.contentLength}
		body, closeConn = &c.fixed, lean.close
	}
	buf := rt.buffers.Get()
	defer rt.buffers.Put(buf)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := st.rw.Write(buf[:n]); werr != nil {
				tc.Close()
				panic(http.ErrAbortHandler)
			}
			if flush {
				st.rw.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			tc.Close()
			panic(http.ErrAbortHandler)
		}
	}
	if res != nil {
		for k, vv := range res.Trailer {
			h[http.TrailerPrefix+k] = vv
		}
		res.Body.Close()
	}
	if closeConn || ctx.Err() != nil {
		tc.Close()
		return nil
	}
	b.putConn(c, rt.cfg.MaxIdleConnsPerBackend)
	return nil
}

// clientWatch ends the wait for an instance's response when the client
// goes away: through the front end's own client watch, or else through
// the request context.
type clientWatch struct {
	stop func() bool
	cc   *clientConn
	tc   *trackedConn
}

func startWatch(ctx context.Context, st *reqState, tc *trackedConn) (clientWatch, error) {
	if w, ok := st.rw.w.(*clientWriter); ok {
		cc := w.cc
		cc.backend.Store(tc)
		if err := ctx.Err(); err != nil {
			cc.backend.CompareAndSwap(tc, nil)
			return clientWatch{}, err
		}
		return clientWatch{cc: cc, tc: tc}, nil
	}
	stop := context.AfterFunc(ctx, func() { tc.Conn.SetReadDeadline(aLongTimeAgo) })
	return clientWatch{stop: stop}, nil
}

// end stops watching; false means the client went away and the
// connection's read deadline may have been cut.
func (w clientWatch) end() bool {
	if w.cc != nil {
		return w.cc.backend.CompareAndSwap(w.tc, nil)
	}
	return w.stop()
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		if !skipResponseHeader[k] {
			dst[k] = vv
		}
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// writeForwarded writes the X-Forwarded-* headers (see setForwarded).
func (rt *Router) writeForwarded(bw *bufio.Writer, in *http.Request) {
	ip := remoteIP(in.RemoteAddr)
	trusted := rt.isTrusted(ip)
	bw.WriteString("X-Forwarded-For: ")
	if prior := in.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		for _, p := range prior {
			bw.WriteString(p)
			bw.WriteString(", ")
		}
	}
	bw.WriteString(ip)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	if v := in.Header["X-Forwarded-Proto"]; trusted && len(v) > 0 {
		bw.WriteString(v[0])
	} else if in.TLS != nil {
		bw.WriteString("https")
	} else {
		bw.WriteString("http")
	}
	bw.WriteString("\r\n")
	if v := in.Header["X-Forwarded-Port"]; trusted && len(v) > 0 {
		bw.WriteString("X-Forwarded-Port: ")
		bw.WriteString(v[0])
		bw.WriteString("\r\n")
	} else if la, ok := in.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		bw.WriteString("X-Forwarded-Port: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(la.Port), 10))
		bw.WriteString("\r\n")
	}
}
