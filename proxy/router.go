package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

// Router routes requests by host to apps' web instances. Create one with
// New; it is safe for concurrent use. Close (or Shutdown) stops its health
// checks and servers.
type Router struct {
	cfg     Config
	log     *slog.Logger
	hook    observe.RequestHook
	trusted []netip.Prefix

	table atomic.Pointer[table]

	ctlMu    sync.Mutex             // serializes table writes
	appLocks map[string]*sync.Mutex // serializes SetBackends per app; under ctlMu
	closed   bool                   // under ctlMu

	states  sync.Pool // *reqState
	buffers *bufferPool

	healthClient *http.Client
	done         chan struct{}
	closeOnce    sync.Once
	wg           sync.WaitGroup // the health loop

	srvMu   sync.Mutex
	servers map[*http.Server]struct{}
	fronts  map[*frontend]struct{}

	hijacked atomic.Int64 // upgraded connections being proxied

	noFastPath bool // tests: everything through httputil.ReverseProxy
	noFrontEnd bool // tests: Serve uses net/http's server for everything

	acme acmeState
}

var _ http.Handler = (*Router)(nil)

// New returns a Router with no routes and starts its health checks.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rt := &Router{
		cfg:      cfg,
		log:      cfg.Logger,
		hook:     cfg.Hook,
		trusted:  cfg.TrustedProxies,
		appLocks: make(map[string]*sync.Mutex),
		buffers:  newBufferPool(32<<10, 1024),
		done:     make(chan struct{}),
		servers:  make(map[*http.Server]struct{}),
		fronts:   make(map[*frontend]struct{}),
		healthClient: &http.Client{
			Timeout: cfg.HealthCheck.Timeout,
			Transport: &http.Transport{
				DisableKeepAlives:     true,
				ResponseHeaderTimeout: cfg.HealthCheck.Timeout,
				DialContext:           (&net.Dialer{Timeout: cfg.HealthCheck.Timeout}).DialContext,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	rt.states.New = func() any { return new(reqState) }
	rt.table.Store(emptyTable)
	if cfg.ACME != nil {
		rt.initACME()
	}
	rt.wg.Add(1)
	go rt.healthLoop()
	return rt, nil
}

// Drain reports when backends removed from the route table have finished.
type Drain struct {
	backends []*backend
}

// Wait returns nil once every removed backend has finished its in-flight
// requests and upgraded connections, ErrDrainTimeout if some were still
// open at Config.DrainTimeout and were closed, or ctx's error.
func (d *Drain) Wait(ctx context.Context) error {
	if d == nil {
		return nil
	}
	for _, b := range d.backends {
		select {
		case <-b.drained:
		case <-ctx.Done():
			return fmt.Errorf("proxy: waiting for %s to drain: %w", b.id, ctx.Err())
		}
	}
	for _, b := range d.backends {
		b.mu.Lock()
		forced := b.forced
		b.mu.Unlock()
		if forced {
			return ErrDrainTimeout
		}
	}
	return nil
}

// Backends lists the ids of the removed backends.
func (d *Drain) Backends() []string {
	if d == nil {
		return nil
	}
	ids := make([]string, len(d.backends))
	for i, b := range d.backends {
		ids[i] = b.id
	}
	return ids
}

// SetHosts routes hosts (exact names or "*.example.com" wildcards, which
// match one label) to app, replacing the app's previous hosts. A host
// routed to another app is refused with ErrHostTaken; an invalid one with
// ErrInvalidHost. An app with hosts and no backends answers H14.
func (rt *Router) SetHosts(app string, hosts []string) error {
	norm := make([]string, 0, len(hosts))
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		n, err := validHost(h)
		if err != nil {
			return err
		}
		if !seen[n] {
			seen[n] = true
			norm = append(norm, n)
		}
	}
	rt.ctlMu.Lock()
	defer rt.ctlMu.Unlock()
	if rt.closed {
		return ErrClosed
	}
	cur := rt.table.Load()
	for name, r := range cur.apps {
		if name == app {
			continue
		}
		for _, h := range r.hosts {
			if seen[h] {
				return fmt.Errorf("%w: %s is routed to %s", ErrHostTaken, h, name)
			}
		}
	}
	apps := copyApps(cur.apps)
	r := apps[app]
	nr := &route{hosts: norm}
	if r != nil {
		nr.app, nr.backends = r.app, r.backends
	} else {
		nr.app = &appState{name: app}
	}
	apps[app] = nr
	rt.table.Store(build(apps))
	return nil
}

// SetBackends makes backends the app's web instances, atomically: a
// request sees the old set or the new one. Backends new to the app (by ID
// and Addr) must first pass one health check; SetBackends retries the
// check until ctx ends and then returns a *HealthError (ErrUnhealthy)
// leaving the table unchanged. Backends already routed keep their state.
//
// The returned Drain reports when the backends that were removed have
// finished their in-flight requests. Calls for the same app are serialized.
func (rt *Router) SetBackends(ctx context.Context, app string, backends []Backend) (*Drain, error) {
	ids := make(map[string]bool, len(backends))
	for _, b := range backends {
		if b.ID == "" || ids[b.ID] {
			return nil, fmt.Errorf("%w: app %s: backend id %q is empty or repeated", ErrInvalidBackend, app, b.ID)
		}
		ids[b.ID] = true
		if _, port, err := net.SplitHostPort(b.Addr); err != nil || port == "" {
			return nil, fmt.Errorf("%w: app %s: backend %s: address %q is not host:port", ErrInvalidBackend, app, b.ID, b.Addr)
		}
	}
	rt.ctlMu.Lock()
	if rt.closed {
		rt.ctlMu.Unlock()
		return nil, ErrClosed
	}
	lock := rt.appLocks[app]
	if lock == nil {
		lock = new(sync.Mutex)
		rt.appLocks[app] = lock
	}
	rt.ctlMu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	existing := map[string]*backend{}
	if r := rt.table.Load().apps[app]; r != nil {
		for _, b := range r.backends {
			existing[b.id] = b
		}
	}
	var fresh []Backend
	for _, b := range backends {
		if e := existing[b.ID]; e == nil || e.addr != b.Addr {
			fresh = append(fresh, b)
		}
	}
	if err := rt.waitHealthy(ctx, app, fresh); err != nil {
		return nil, err
	}

	rt.ctlMu.Lock()
	if rt.closed {
		rt.ctlMu.Unlock()
		return nil, ErrClosed
	}
	cur := rt.table.Load()
	apps := copyApps(cur.apps)
	nr := &route{}
	old := apps[app]
	if old != nil {
		nr.app, nr.hosts = old.app, old.hosts
	} else {
		nr.app = &appState{name: app}
	}
	kept := map[*backend]bool{}
	for _, b := range backends {
		e := existing[b.ID]
		limit := int64(b.Concurrency)
		if limit <= 0 {
			limit = int64(rt.cfg.Concurrency)
		}
		if e != nil && e.addr == b.Addr && e.limit == limit && !e.removed.Load() {
			kept[e] = true
			nr.backends = append(nr.backends, e)
			continue
		}
		nb := newBackend(rt, nr.app, b)
		if e != nil && e.addr == b.Addr {
			// Only the concurrency changed: keep the health state.
			nb.unhealthy.Store(e.unhealthy.Load())
		}
		nr.backends = append(nr.backends, nb)
	}
	apps[app] = nr
	rt.table.Store(build(apps))
	rt.ctlMu.Unlock()

	d := &Drain{}
	if old != nil {
		for _, b := range old.backends {
			if !kept[b] {
				d.backends = append(d.backends, b)
				b.startDrain(rt.cfg.DrainTimeout)
			}
		}
	}
	nr.app.queue.wakeAll()
	rt.log.Info("router: backends set", "app", app, "backends", len(backends), "new", len(fresh), "draining", len(d.backends))
	return d, nil
}

// RemoveApp stops routing to app: its hosts answer H00 and its backends
// drain. Removing an unknown app returns an empty Drain.
func (rt *Router) RemoveApp(app string) *Drain {
	rt.ctlMu.Lock()
	cur := rt.table.Load()
	r := cur.apps[app]
	if r == nil {
		rt.ctlMu.Unlock()
		return &Drain{}
	}
	apps := copyApps(cur.apps)
	delete(apps, app)
	rt.table.Store(build(apps))
	rt.ctlMu.Unlock()
	d := &Drain{backends: r.backends}
	for _, b := range r.backends {
		b.startDrain(rt.cfg.DrainTimeout)
	}
	r.app.queue.wakeAll()
	return d
}

// Apps lists the routed apps, sorted.
func (rt *Router) Apps() []string {
	t := rt.table.Load()
	out := make([]string, 0, len(t.apps))
	for a := range t.apps {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// AllQueueStats returns QueueStats for every routed app, sorted by app.
func (rt *Router) AllQueueStats(window time.Duration) []QueueStats {
	apps := rt.Apps()
	out := make([]QueueStats, 0, len(apps))
	for _, a := range apps {
		if q, ok := rt.QueueStats(a, window); ok {
			out = append(out, q)
		}
	}
	return out
}

// QueueStats returns the app's queue-time statistics over the last window
// (at most 60s; zero means 60s), and false when the app is not routed.
func (rt *Router) QueueStats(app string, window time.Duration) (QueueStats, bool) {
	r := rt.table.Load().apps[app]
	if r == nil {
		return QueueStats{}, false
	}
	now := time.Now()
	q := QueueStats{App: app, ProcessType: WebProcessType, Instances: len(r.backends)}
	r.app.stats.snapshot(now, window, &q)
	q.Queued = int(r.app.queue.n.Load())
	ns := now.UnixNano()
	for _, b := range r.backends {
		q.InFlight += int(b.inflight.Load())
		if b.eligible(ns) {
			q.Healthy++
			q.Capacity += int(b.limit)
		}
	}
	return q, true
}

func copyApps(m map[string]*route) map[string]*route {
	out := make(map[string]*route, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// reqState is the per-request state, pooled.
type reqState struct {
	rw   respWriter
	body *countingBody // nil without a body; not pooled: the transport may read it late
	obs  observe.Request
	held *backend
	// clientID is set when the client's X-Request-Id is kept.
	clientID bool
}

// ServeHTTP routes one request.
func (rt *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	st := rt.states.Get().(*reqState)
	st.rw = respWriter{w: w, rt: rt}
	st.body = nil
	st.held = nil
	st.clientID = false
	st.obs = observe.Request{Start: start, Host: req.Host, Method: req.Method, Path: req.URL.Path}
	defer func() {
		if p := recover(); p != nil {
			// httputil.ReverseProxy aborts with http.ErrAbortHandler when
			// the response body copy fails after the status was sent.
			if b := st.held; b != nil {
				st.held = nil
				b.release()
			}
			code := CodeInterrupted
			if st.rw.writeErr || req.Context().Err() != nil {
				code = st.rw.clientCode()
			}
			if p != http.ErrAbortHandler {
				code = CodeRouterError
				rt.log.Error("router: panic", "request_id", st.obs.RequestID, "panic", fmt.Sprint(p))
			}
			st.obs.Code = string(code)
			rt.logError(req, st, code, nil)
			rt.finish(st, req)
			panic(p)
		}
	}()
	rt.serve(st, req, start)
	rt.finish(st, req)
}

func (rt *Router) serve(st *reqState, req *http.Request, start time.Time) {
	if v := req.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		st.obs.RequestID, st.clientID = v[0], true
	} else {
		st.obs.RequestID = newRequestID()
	}
	r := rt.table.Load().lookup(normalizeHost(req.Host))
	if r == nil {
		rt.fail(st, req, CodeUnknownHost, 0, nil)
		return
	}
	app := r.app
	st.obs.App, st.obs.ProcessType = app.name, WebProcessType

	fast := !rt.noFastPath && fastEligible(req)
	if !fast {
		// ReverseProxy copies these from the inbound request.
		if !st.clientID {
			req.Header["X-Request-Id"] = []string{st.obs.RequestID}
		}
		req.Header["X-Request-Start"] = []string{strconv.FormatInt(start.UnixMilli(), 10)}
	}

	if req.Body != nil && req.Body != http.NoBody {
		max := rt.cfg.MaxBodyBytes
		if max < 0 || max > 0 && req.ContentLength > max {
			rt.fail(st, req, CodeHTTPRestriction, http.StatusRequestEntityTooLarge, nil)
			return
		}
		st.body = &countingBody{rc: req.Body, max: max}
		req.Body = st.body
	}

	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		b, code := rt.acquire(ctx, app, r)
		if code != "" {
			if code != CodeClientInterrupted {
				app.stats.record(time.Now(), 0, true)
			}
			rt.fail(st, req, code, 0, nil)
			return
		}
		if attempt == 0 {
			q := time.Since(start)
			st.obs.QueueTime = q
			app.stats.record(start, q, false)
		}
		st.held = b
		st.obs.Instance = b.id
		st.rw.err = nil
		var err error
		if fast {
			err = rt.serveFast(st, b, req)
		} else {
			b.proxy.ServeHTTP(&st.rw, req)
			err = st.rw.err
		}
		st.held = nil
		b.release()
		if err == nil {
			return
		}
		code, retry := rt.classify(ctx, st, b, err)
		if retry && attempt < 2 && st.body.read() == 0 && !st.rw.wroteHeader {
			// Try another instance only if one is up now; otherwise the
			// refusal is the answer (waiting would only end in H10).
			r = rt.table.Load().apps[app.name]
			if r != nil && r.app == app && anyEligible(r) {
				continue
			}
		}
		status := 0
		if code == CodeHTTPRestriction {
			status = http.StatusRequestEntityTooLarge
		}
		rt.fail(st, req, code, status, err)
		return
	}
}

// classify maps a proxy error to a code, and says whether another instance
// may be tried (nothing reached the instance).
func (rt *Router) classify(ctx context.Context, st *reqState, b *backend, err error) (Code, bool) {
	if st.body != nil && st.body.tooLarge.Load() {
		return CodeHTTPRestriction, false
	}
	if ctx.Err() != nil {
		return CodeClientInterrupted, false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		b.quarantine(rt.cfg.Quarantine)
		rt.log.Warn("router: instance quarantined", "app", b.app.name, "instance", b.id, "addr", b.addr, "for", rt.cfg.Quarantine, "err", err)
		if op.Timeout() {
			return CodeConnectTimeout, true
		}
		return CodeConnRefused, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return CodeRequestTimeout, false
	}
	return CodeConnClosed, false
}

// acquire finds an instance with a free slot, waiting in the app's queue
// for at most QueueTimeout.
func (rt *Router) acquire(ctx context.Context, app *appState, r *route) (*backend, Code) {
	if len(r.backends) == 0 {
		return nil, CodeNoInstances
	}
	q := &app.queue
	if q.n.Load() == 0 {
		if b := rt.pick(r); b != nil {
			return b, ""
		}
	}
	if q.n.Load() >= int64(rt.cfg.QueueLength) {
		return nil, CodeBacklogTooDeep
	}
	w := q.push()
	deadline := time.Now().Add(rt.cfg.QueueTimeout)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sawEligible := false
	for {
		if r == nil || len(r.backends) == 0 {
			q.remove(w)
			return nil, CodeNoInstances
		}
		if b := rt.pick(r); b != nil {
			q.remove(w)
			return b, ""
		}
		now := time.Now()
		if !sawEligible {
			ns := now.UnixNano()
			for _, b := range r.backends {
				if b.eligible(ns) {
					sawEligible = true
					break
				}
			}
		}
		left := deadline.Sub(now)
		if left <= 0 {
			q.remove(w)
			if sawEligible {
				return nil, CodeBacklogTooDeep
			}
			return nil, CodeNoHealthyInstance
		}
		// Wake at least every 250ms to notice quarantines ending.
		timer.Reset(min(left, 250*time.Millisecond))
		select {
		case <-w.ch:
		case <-timer.C:
		case <-ctx.Done():
			q.remove(w)
			return nil, CodeClientInterrupted
		case <-rt.done:
			q.remove(w)
			return nil, CodeNoHealthyInstance
		}
		r = rt.table.Load().apps[app.name]
		if r != nil && r.app != app {
			r = nil
		}
	}
}

// pick chooses an eligible instance with a free slot by the power of two
// choices on outstanding requests, and takes the slot.
func (rt *Router) pick(r *route) *backend {
	bs := r.backends
	now := time.Now().UnixNano()
	n := len(bs)
	if n == 1 {
		if b := bs[0]; b.eligible(now) && rt.take(b) {
			return b
		}
		return nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := bs[i], bs[j]
	if !a.eligible(now) || b.eligible(now) && b.inflight.Load()*a.limit < a.inflight.Load()*b.limit {
		a, b = b, a
	}
	if a.eligible(now) && rt.take(a) {
		return a
	}
	if b.eligible(now) && rt.take(b) {
		return b
	}
	// Both were busy or out: take the least loaded other one.
	var best *backend
	var bestLoad int64
	for _, c := range bs {
		if c == a || c == b || !c.eligible(now) {
			continue
		}
		if l := c.inflight.Load(); l < c.limit && (best == nil || l*best.limit < bestLoad*c.limit) {
			best, bestLoad = c, l
		}
	}
	if best != nil && rt.take(best) {
		return best
	}
	return nil
}

func anyEligible(r *route) bool {
	now := time.Now().UnixNano()
	for _, b := range r.backends {
		if b.eligible(now) {
			return true
		}
	}
	return false
}

// take acquires a slot of b unless b was removed meanwhile.
func (rt *Router) take(b *backend) bool {
	if !b.tryAcquire() {
		return false
	}
	if b.removed.Load() {
		b.release()
		return false
	}
	return true
}

// fail answers with the code's error page (unless the response started or
// the client is gone), logs and marks the request.
func (rt *Router) fail(st *reqState, req *http.Request, code Code, status int, err error) {
	if status == 0 {
		status = code.Status()
	}
	st.obs.Code = string(code)
	if code == CodeClientInterrupted {
		st.rw.status = StatusClientClosed
	} else if !st.rw.wroteHeader {
		h := st.rw.w.Header()
		h["Content-Type"] = htmlContentType
		h["Cache-Control"] = noStore
		h["X-Router-Error"] = []string{string(code)}
		if id := st.obs.RequestID; id != "" {
			h["X-Request-Id"] = []string{id}
		}
		page := errorPages[code]
		h["Content-Length"] = []string{strconv.Itoa(len(page))}
		st.rw.WriteHeader(status)
		if req.Method != http.MethodHead {
			st.rw.Write(page)
		}
	}
	rt.logError(req, st, code, err)
}

var (
	htmlContentType = []string{"text/html; charset=utf-8"}
	noStore         = []string{"no-store"}
	protoHTTP       = []string{"http"}
	protoHTTPS      = []string{"https"}
)

func (rt *Router) logError(req *http.Request, st *reqState, code Code, err error) {
	if !rt.log.Enabled(req.Context(), slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{
		slog.String("code", string(code)),
		slog.String("desc", code.Description()),
		slog.String("request_id", st.obs.RequestID),
		slog.String("host", req.Host),
		slog.String("app", st.obs.App),
		slog.String("instance", st.obs.Instance),
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	rt.log.LogAttrs(req.Context(), slog.LevelWarn, "router error", attrs...)
}

// finish reports the request to the hook and returns st to the pool.
func (rt *Router) finish(st *reqState, req *http.Request) {
	if rt.hook != nil {
		o := &st.obs
		o.Latency = time.Since(o.Start)
		o.Status = st.rw.status
		if o.Status == 0 {
			o.Status = http.StatusOK
		}
		o.BytesIn = st.body.read()
		o.BytesOut = st.rw.bytes
		rt.hook.ObserveRequest(o)
	}
	if st.rw.hijacked {
		rt.hijacked.Add(-1)
	}
	st.rw = respWriter{}
	st.body = nil
	st.obs = observe.Request{}
	rt.states.Put(st)
}

// setForwarded sets the X-Forwarded-* headers of an outbound request.
func (rt *Router) setForwarded(pr *httputil.ProxyRequest) {
	in, h := pr.In, pr.Out.Header
	ip := remoteIP(in.RemoteAddr)
	trusted := rt.isTrusted(ip)
	if prior := in.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
	} else {
		h["X-Forwarded-For"] = []string{ip}
	}
	if v := in.Header["X-Forwarded-Proto"]; trusted && len(v) > 0 {
		h["X-Forwarded-Proto"] = v
	} else if in.TLS != nil {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	if v := in.Header["X-Forwarded-Port"]; !trusted || len(v) == 0 {
		if la, ok := in.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
			h["X-Forwarded-Port"] = []string{strconv.Itoa(la.Port)}
		} else {
			delete(h, "X-Forwarded-Port")
		}
	}
}

// isTrusted reports whether the client address ip is a trusted proxy.
func (rt *Router) isTrusted(ip string) bool {
	if len(rt.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range rt.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteIP(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		addr = addr[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}

// validRequestID reports whether a client's X-Request-Id is kept: 20 to
// 200 characters from [A-Za-z0-9+/=-], as on Heroku.
func validRequestID(s string) bool {
	if len(s) < 20 || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-') {
			return false
		}
	}
	return true
}

// newRequestID returns a random (version 4) UUID.
func newRequestID() string {
	const hex = "0123456789abcdef"
	var u [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[c>>4], hex[c&15]
		j += 2
	}
	return string(s[:])
}

// proxyErrorHandler records the error for ServeHTTP to classify.
func proxyErrorHandler(w http.ResponseWriter, _ *http.Request, err error) {
	if rw, ok := w.(*respWriter); ok {
		rw.err = err
		return
	}
	w.WriteHeader(http.StatusBadGateway)
}
