package proxy

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

// The front end serves plain-HTTP listeners (Router.Serve) without
// net/http's server for the common request: it accepts connections, reads
// request heads with a strict parser (parse.go) and serves fast-path
// requests (see fastEligible) on the connection's goroutine, with no
// per-request goroutine or deadline changes. The first request of any other
// kind (a body, an upgrade, Expect, HTTP/1.0, an absolute-form target, an
// ACME challenge, ...) hands the connection, with the bytes read so far,
// to a net/http server, which serves it from then on.

// frontend serves one listener.
type frontend struct {
	rt      *Router
	srv     *http.Server // takes handed-off connections
	ln      net.Listener // limited to Config.MaxConns
	hand    *handoffListener
	baseCtx context.Context
	maxHead int
	acme    bool

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*clientConn]struct{}
}

func (rt *Router) newFrontend(srv *http.Server, ln net.Listener) *frontend {
	fe := &frontend{
		rt:      rt,
		srv:     srv,
		ln:      ln,
		hand:    &handoffListener{addr: ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})},
		baseCtx: context.WithValue(context.Background(), http.ServerContextKey, srv),
		maxHead: rt.cfg.MaxHeaderBytes + 4096, // net/http's allowance for the request line
		acme:    rt.acme.mgr != nil,
		conns:   make(map[*clientConn]struct{}),
	}
	return fe
}

// serve accepts connections until the front end is closed.
func (fe *frontend) serve() error {
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		fe.srv.Serve(fe.hand)
	}()
	defer func() {
		fe.hand.Close()
		<-srvDone
	}()
	var delay time.Duration
	for {
		c, err := fe.ln.Accept()
		if err != nil {
			if fe.closing.Load() {
				return http.ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		cc := fe.newConn(c)
		if cc == nil {
			c.Close()
			continue
		}
		go cc.serve()
	}
}

// shutdown stops accepting, closes idle connections and waits for the
// others to finish their current request, or for ctx.
func (fe *frontend) shutdown(ctx context.Context) error {
	fe.closing.Store(true)
	fe.ln.Close()
	fe.hand.Close()
	wait := time.Millisecond
	for {
		if fe.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// close stops accepting and closes every connection.
func (fe *frontend) close() {
	fe.closing.Store(true)
	fe.ln.Close()
	fe.hand.Close()
	fe.mu.Lock()
	for cc := range fe.conns {
		cc.state.Store(connClosed)
		cc.c.Close()
	}
	fe.mu.Unlock()
}

// closeIdle closes the idle connections and reports whether none is left.
func (fe *frontend) closeIdle() bool {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	for cc := range fe.conns {
		if cc.state.CompareAndSwap(connIdle, connClosed) {
			cc.c.Close()
		}
	}
	return len(fe.conns) == 0
}

func (fe *frontend) newConn(c net.Conn) *clientConn {
	cc := &clientConn{
		fe:     fe,
		c:      c,
		buf:    make([]byte, 4<<10),
		bw:     bufio.NewWriterSize(c, 4<<10),
		hdr:    make(http.Header, 16),
		remote: c.RemoteAddr().String(),
	}
	cc.state.Store(connIdle)
	cc.out.h = make(http.Header, 16)
	cc.out.bw = cc.bw
	cc.out.cc = cc
	ctx := context.WithValue(fe.baseCtx, http.LocalAddrContextKey, c.LocalAddr())
	cc.ctx, cc.cancel = context.WithCancel(ctx)
	cc.req = (&http.Request{}).WithContext(cc.ctx)
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if fe.closing.Load() {
		cc.cancel()
		return nil
	}
	fe.conns[cc] = struct{}{}
	return cc
}

func (fe *frontend) forget(cc *clientConn) {
	fe.mu.Lock()
	delete(fe.conns, cc)
	fe.mu.Unlock()
}

// Connection states, for shutdown.
const (
	connIdle   int32 = iota // waiting for a request, nothing of it read
	connActive              // reading or serving a request
	connClosed              // closed by shutdown
)

// Client watch states.
const (
	watchOff   = iota
	watchArmed // the timer may start the watch
	watchOn    // the watch goroutine reads from the client
)

// watchDelay is how long a request may take before the front end starts
// watching its client for a disconnect (which cancels the request). Fast
// requests are spared the goroutine and the deadline changes.
const watchDelay = 100 * time.Millisecond

// clientConn is a client connection served by the front end.
type clientConn struct {
	fe     *frontend
	c      net.Conn
	buf    []byte // read buffer; buf[r:w] is unread
	r, w   int
	bw     *bufio.Writer
	head   reqHead
	hdr    http.Header // the request's headers, reused
	url    url.URL
	req    *http.Request // carries ctx; reused
	ctx    context.Context
	cancel context.CancelFunc
	out    clientWriter
	remote string
	state  atomic.Int32

	// deadline is the read deadline last set (unix ns), 0 if unknown.
	deadline int64
	// hdrDeadline: the ReadHeaderTimeout deadline of the current request
	// is set.
	hdrDeadline bool

	watchMu   sync.Mutex
	watch     int
	watchDone chan struct{}
	watchT    *time.Timer
	// backend is the instance connection whose response the request
	// waits for (see startWatch).
	backend atomic.Pointer[trackedConn]

	dateSec int64
	date    []byte
}

var aLongTimeAgo = time.Unix(1, 0)

func (cc *clientConn) serve() {
	handedOff := false
	defer func() {
		if cc.watchT != nil {
			cc.watchT.Stop()
		}
		cc.cancel()
		cc.fe.forget(cc)
		if !handedOff {
			cc.c.Close()
		}
	}()
	rt := cc.fe.rt
	now := time.Now()
	cc.c.SetReadDeadline(now.Add(rt.cfg.ReadHeaderTimeout))
	cc.hdrDeadline = true
	for {
		n, err := cc.readHead()
		if err != nil {
			if he, ok := err.(*headError); ok {
				cc.reject(he, "")
			}
			return
		}
		s := string(cc.buf[cc.r : cc.r+n])
		if err := parseHead(s, &cc.head); err != nil {
			if he, ok := err.(*headError); ok {
				cc.reject(he, s)
				return
			}
			handedOff = cc.handoff()
			return
		}
		if !cc.eligible() {
			handedOff = cc.handoff()
			return
		}
		if err := cc.buildRequest(); err != nil {
			cc.reject(errTargetInvalid, s)
			return
		}
		if !fastEligible(cc.req) || cc.fe.acme && strings.HasPrefix(cc.url.Path, acmeChallengePath) {
			handedOff = cc.handoff()
			return
		}
		cc.r += n
		cc.hdrDeadline = false
		if !cc.serveRequest() || cc.fe.closing.Load() {
			return
		}
	}
}

// readHead returns the length of the next complete request head at
// buf[r:], reading as needed.
func (cc *clientConn) readHead() (int, error) {
	cfg := &cc.fe.rt.cfg
	for {
		if cc.w > cc.r {
			if n, err := headEnd(cc.buf[cc.r:cc.w], cc.fe.maxHead); n > 0 || err != nil {
				return n, err
			}
		}
		if cc.r == cc.w {
			cc.r, cc.w = 0, 0
		}
		if cc.w == len(cc.buf) {
			if cc.r > 0 {
				cc.w = copy(cc.buf, cc.buf[cc.r:cc.w])
				cc.r = 0
			} else {
				nb := make([]byte, min(2*len(cc.buf), cc.fe.maxHead+1))
				copy(nb, cc.buf[:cc.w])
				cc.buf = nb
			}
		}
		idle := cc.r == cc.w
		now := time.Now()
		if idle && !cc.hdrDeadline {
			// Between requests: the idle timeout, pushed only when it
			// moved by over a sixteenth (at most a second), so that a
			// busy connection rarely touches its timer.
			want := now.Add(cfg.ClientIdleTimeout).UnixNano()
			slack := min(int64(cfg.ClientIdleTimeout/16), int64(time.Second))
			if cc.deadline == 0 || want-cc.deadline > slack || cc.deadline > want {
				cc.c.SetReadDeadline(time.Unix(0, want))
				cc.deadline = want
			}
			cc.state.Store(connIdle)
			if cc.fe.closing.Load() {
				return 0, net.ErrClosed
			}
		} else if !cc.hdrDeadline {
			// Part of a head: ReadHeaderTimeout from now on.
			d := now.Add(cfg.ReadHeaderTimeout)
			cc.c.SetReadDeadline(d)
			cc.deadline = d.UnixNano()
			cc.hdrDeadline = true
		}
		n, err := cc.c.Read(cc.buf[cc.w:])
		cc.w += n
		if idle {
			if !cc.state.CompareAndSwap(connIdle, connActive) {
				return 0, net.ErrClosed
			}
		}
		if err != nil {
			return 0, err
		}
	}
}

// eligible reports whether the parsed head may be served here.
func (cc *clientConn) eligible() bool {
	h := &cc.head
	if cc.fe.rt.noFastPath || h.minor != 1 || h.contentLength > 0 || h.chunked || h.target == "" || h.target[0] != '/' {
		return false
	}
	switch h.method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return !cc.fe.acme || !strings.HasPrefix(h.target, acmeChallengePath)
}

// acmeChallengePath is where autocert answers HTTP-01 challenges.
const acmeChallengePath = "/.well-known/acme-challenge/"

// buildRequest fills cc.req from cc.head.
func (cc *clientConn) buildRequest() error {
	h := &cc.head
	if plainTarget(h.target) {
		path, query, _ := strings.Cut(h.target, "?")
		cc.url = url.URL{Path: path, RawQuery: query}
	} else {
		u, err := url.ParseRequestURI(h.target)
		if err != nil {
			return err
		}
		cc.url = *u
	}
	hdr := cc.hdr
	clear(hdr)
	vals := make([]string, len(h.fields))
	for i, f := range h.fields {
		if old, ok := hdr[f.name]; ok {
			hdr[f.name] = append(old, f.value)
		} else {
			vals[i] = f.value
			hdr[f.name] = vals[i : i+1 : i+1]
		}
	}
	r := cc.req
	r.Method = h.method
	r.URL = &cc.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = hdr
	r.Body = http.NoBody
	r.ContentLength = 0
	r.Host = h.host
	r.RequestURI = h.target
	r.RemoteAddr = cc.remote
	r.Close = false
	if c := hdr["Connection"]; len(c) == 1 && strings.EqualFold(c[0], "close") {
		r.Close = true
	}
	return nil
}

// serveRequest serves cc.req and reports whether the connection stays
// open.
func (cc *clientConn) serveRequest() bool {
	w := &cc.out
	w.reset(cc.req.Method == http.MethodHead, cc.req.Close)
	cc.armWatch()
	ok := cc.callHandler(w)
	cc.disarmWatch()
	if !ok || cc.ctx.Err() != nil {
		return false
	}
	if err := w.finish(cc); err != nil {
		return false
	}
	return !w.closeAfter
}

// callHandler runs the router's handler and reports false if it aborted
// (a panic, which ServeHTTP already logged).
func (cc *clientConn) callHandler(w *clientWriter) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	cc.fe.rt.ServeHTTP(w, cc.req)
	return true
}

// armWatch lets the watch timer start watching the client.
func (cc *clientConn) armWatch() {
	if cc.r != cc.w {
		return // the next request is already here: the client is too
	}
	cc.r, cc.w = 0, 0
	cc.watchMu.Lock()
	cc.watch = watchArmed
	cc.watchMu.Unlock()
	if cc.watchT == nil {
		cc.watchT = time.AfterFunc(watchDelay, cc.watchClient)
	} else {
		cc.watchT.Reset(watchDelay)
	}
}

// watchClient reads from the client while its request is served: a
// disconnect cancels the request; bytes of a next request end the watch.
func (cc *clientConn) watchClient() {
	cc.watchMu.Lock()
	if cc.watch != watchArmed {
		cc.watchMu.Unlock()
		return
	}
	cc.watch = watchOn
	done := make(chan struct{})
	cc.watchDone = done
	cc.c.SetReadDeadline(time.Time{})
	cc.watchMu.Unlock()
	defer close(done)
	n, err := cc.c.Read(cc.buf[cc.w:])
	cc.w += n
	if n == 0 && err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return // disarmWatch ended the watch
		}
		cc.cancel()
		if tc := cc.backend.Swap(nil); tc != nil {
			tc.Conn.SetReadDeadline(aLongTimeAgo) // end the wait for its response
		}
	}
}

// disarmWatch ends the watch, waiting for a running one.
func (cc *clientConn) disarmWatch() {
	cc.watchMu.Lock()
	switch cc.watch {
	case watchArmed:
		cc.watch = watchOff
		cc.watchMu.Unlock()
		cc.watchT.Stop()
		return
	case watchOn:
		cc.watch = watchOff
		cc.c.SetReadDeadline(aLongTimeAgo)
		done := cc.watchDone
		cc.watchMu.Unlock()
		<-done
		cc.deadline = 0
		return
	}
	cc.watchMu.Unlock()
}

// handoff passes the connection, with the bytes read, to net/http.
func (cc *clientConn) handoff() bool {
	cc.c.SetReadDeadline(time.Time{})
	cc.fe.forget(cc)
	return cc.fe.hand.give(&prefixConn{Conn: cc.c, pending: cc.buf[cc.r:cc.w]})
}

// reject answers a malformed request, reports it and closes the
// connection after letting the client read the answer.
func (cc *clientConn) reject(he *headError, head string) {
	rt := cc.fe.rt
	code := CodeBadRequest
	if he.status == http.StatusRequestHeaderFieldsTooLarge {
		code = CodeHeaderTooLarge
	}
	o := observe.Request{Start: time.Now(), RequestID: newRequestID(), Status: he.status, Code: string(code)}
	if head != "" {
		o.Method, o.Host = cc.head.method, cc.head.host
		o.Path, _, _ = strings.Cut(cc.head.target, "?")
	}
	if rt.log.Enabled(cc.ctx, slog.LevelWarn) {
		rt.log.LogAttrs(cc.ctx, slog.LevelWarn, "router error",
			slog.String("code", string(code)),
			slog.String("desc", code.Description()),
			slog.String("request_id", o.RequestID),
			slog.String("host", o.Host),
			slog.String("method", o.Method),
			slog.String("path", o.Path),
			slog.String("client", cc.remote),
			slog.String("err", he.reason))
	}
	page := errorPages[code]
	bw := cc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(he.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(he.status))
	bw.WriteString("\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\nX-Router-Error: ")
	bw.WriteString(string(code))
	bw.WriteString("\r\nX-Request-Id: ")
	bw.WriteString(o.RequestID)
	bw.WriteString("\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(page)))
	bw.WriteString("\r\n\r\n")
	bw.Write(page)
	o.BytesOut = int64(len(page))
	o.Latency = time.Since(o.Start)
	if rt.hook != nil {
		rt.hook.ObserveRequest(&o)
	}
	if err := bw.Flush(); err != nil {
		return
	}
	// Half-close and drain briefly, so that unread request bytes do not
	// turn the close into a reset that discards the answer.
	if lc, ok := cc.c.(*limitConn); ok {
		if cw, ok := lc.Conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	cc.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for total := 0; total < 256<<10; {
		n, err := cc.c.Read(cc.buf)
		total += n
		if err != nil {
			break
		}
	}
}

// clientWriter is the http.ResponseWriter of front-end requests: HTTP/1.1
// on the connection's buffered writer, with Content-Length framing when
// the handler sets it and chunked framing otherwise.
type clientWriter struct {
	h           http.Header
	bw          *bufio.Writer
	head        bool // a HEAD request: no body
	wroteHeader bool
	bodyless    bool
	chunked     bool
	closeAfter  bool
	cl          int64 // the declared Content-Length, -1 if none
	n           int64 // body bytes written
	cc          *clientConn
}

var (
	_ http.ResponseWriter = (*clientWriter)(nil)
	_ http.Flusher        = (*clientWriter)(nil)
)

func (w *clientWriter) reset(head, closeAfter bool) {
	clear(w.h)
	w.head, w.closeAfter = head, closeAfter
	w.wroteHeader, w.bodyless, w.chunked = false, false, false
	w.cl, w.n = -1, 0
}

func (w *clientWriter) Header() http.Header { return w.h }

func (w *clientWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational: sent at once; the final response follows.
		w.writeHead(code, true)
		w.bw.Flush()
		return
	}
	w.wroteHeader = true
	if w.cc.fe.closing.Load() {
		w.closeAfter = true // shutting down: this is the last response
	}
	if v, ok := w.h["Content-Length"]; ok {
		if n, valid := parseContentLength(strings.TrimSpace(firstOf(v))); len(v) == 1 && valid {
			w.cl = n
		} else {
			delete(w.h, "Content-Length")
		}
	}
	switch {
	case code < 200 || code == http.StatusNoContent:
		delete(w.h, "Content-Length")
		w.cl = -1
		w.bodyless = true
	case w.head || code == http.StatusNotModified:
		w.bodyless = true
	case w.cl < 0:
		w.chunked = true
	}
	w.writeHead(code, false)
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// writeHead writes the status line and the headers.
func (w *clientWriter) writeHead(code int, informational bool) {
	bw := w.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	}
	bw.WriteString("\r\n")
	for k, vv := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if !informational {
		if _, ok := w.h["Date"]; !ok {
			bw.WriteString("Date: ")
			bw.Write(w.cc.httpDate())
			bw.WriteString("\r\n")
		}
		if w.chunked {
			bw.WriteString("Transfer-Encoding: chunked\r\n")
		}
		if w.closeAfter {
			bw.WriteString("Connection: close\r\n")
		}
	}
	bw.WriteString("\r\n")
}

// writeField writes one header line; like net/http it drops invalid
// names and turns CR and LF in values into spaces.
func writeField(bw *bufio.Writer, k, v string) {
	if !isToken(k) {
		return
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			v = strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
			break
		}
	}
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

func (w *clientWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.bodyless {
		if w.head {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.n+int64(len(p)) > w.cl {
		w.closeAfter = true
		return 0, http.ErrContentLength
	}
	w.n += int64(len(p))
	if !w.chunked {
		return w.bw.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.bw.Write(strconv.AppendInt(w.bw.AvailableBuffer(), int64(len(p)), 16))
	w.bw.WriteString("\r\n")
	w.bw.Write(p)
	if _, err := w.bw.WriteString("\r\n"); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends what was written so far.
func (w *clientWriter) Flush() { w.FlushError() }

// FlushError sends what was written so far (http.ResponseController).
func (w *clientWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.bw.Flush()
}

// finish ends the response: the last chunk and trailers, and the flush.
func (w *clientWriter) finish(cc *clientConn) error {
	if !w.wroteHeader {
		if _, ok := w.h["Content-Length"]; !ok {
			w.h["Content-Length"] = zeroLength
		}
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.chunked:
		w.bw.WriteString("0\r\n")
		for k, vv := range w.h {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					writeField(w.bw, http.CanonicalHeaderKey(name), v)
				}
			}
		}
		w.bw.WriteString("\r\n")
	case !w.bodyless && w.cl >= 0 && w.n < w.cl:
		w.closeAfter = true // short body: the client must not wait for more
	}
	return w.bw.Flush()
}

var zeroLength = []string{"0"}

// httpDate returns the current time in HTTP's format, recomputed at most
// once a second.
func (cc *clientConn) httpDate() []byte {
	now := time.Now()
	if s := now.Unix(); s != cc.dateSec || cc.date == nil {
		cc.dateSec = s
		cc.date = now.UTC().AppendFormat(cc.date[:0], http.TimeFormat)
	}
	return cc.date
}

// handoffListener yields handed-off connections to net/http's server.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// give hands c to the server, or reports false once the listener closed.
func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
