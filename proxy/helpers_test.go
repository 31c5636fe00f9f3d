package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

// recorder is a RequestHook that keeps copies of what it is told.
type recorder struct {
	mu   sync.Mutex
	reqs []observe.Request
}

func (r *recorder) ObserveRequest(o *observe.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, *o)
	r.mu.Unlock()
}

func (r *recorder) all() []observe.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observe.Request(nil), r.reqs...)
}

func (r *recorder) last(t *testing.T) observe.Request {
	t.Helper()
	// The hook runs after the response was written; give it a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.reqs)
		var o observe.Request
		if n > 0 {
			o = r.reqs[n-1]
		}
		r.mu.Unlock()
		if n > 0 {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatal("no request was reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReports waits until n requests were reported.
func (r *recorder) waitReports(t *testing.T, n int) []observe.Request {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := r.all()
		if len(all) >= n {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests reported, want %d", len(all), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testRouter starts a router serving on a loopback port.
type testRouter struct {
	*Router
	addr string
	rec  *recorder
	errc chan error
}

func startRouter(t *testing.T, cfg Config) *testRouter {
	t.Helper()
	rec := &recorder{}
	if cfg.Hook == nil {
		cfg.Hook = rec
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt.noFastPath = testNoFastPath
	rt.noFrontEnd = testNoFrontEnd
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRouter{Router: rt, addr: ln.Addr().String(), rec: rec, errc: make(chan error, 1)}
	go func() { tr.errc <- rt.Serve(ln) }()
	t.Cleanup(func() {
		// Connections the client dialed but never used are "new" to the
		// server, which Shutdown waits 5s for: close them first.
		testClient.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rt.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-tr.errc; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return tr
}

// get sends a request for host through the router.
func (tr *testRouter) do(t *testing.T, method, host, path string, body io.Reader, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+tr.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

var testClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}

// startBackend starts an HTTP server on loopback that answers with name.
func startBackend(t *testing.T, name string, h http.HandlerFunc) (*httptest.Server, Backend) {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, Backend{ID: name, Addr: strings.TrimPrefix(srv.URL, "http://")}
}

func setBackends(t testing.TB, rt *Router, app string, bs ...Backend) *Drain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := rt.SetBackends(ctx, app, bs)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkGoroutines fails when the goroutine count does not return to base.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want <= %d:\n%s", n, base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }

// testNoFastPath makes startRouter's routers send every request through
// httputil.ReverseProxy.
var testNoFastPath bool

// testNoFrontEnd makes startRouter's routers serve plain HTTP with
// net/http's server alone.
var testNoFrontEnd bool

// TestNetHTTPServer runs the tests through net/http's server instead of
// the front end (as ServeTLS does), on both forwarding paths.
func TestNetHTTPServer(t *testing.T) {
	testNoFrontEnd = true
	defer func() { testNoFrontEnd = false }()
	for _, noFast := range []bool{false, true} {
		testNoFastPath = noFast
		name := "FastPath"
		if noFast {
			name = "ReverseProxyPath"
		}
		t.Run(name, func(t *testing.T) {
			runForwardingTests(t)
			t.Run("AbsoluteForm", TestAbsoluteFormRequest)
			t.Run("Stale", TestStalePooledConnection)
		})
	}
	testNoFastPath = false
}

// TestReverseProxyPath runs the tests of GET requests, which take the fast
// path, through httputil.ReverseProxy too.
func TestReverseProxyPath(t *testing.T) {
	testNoFastPath = true
	defer func() { testNoFastPath = false }()
	runForwardingTests(t)
	t.Run("Pipelining", TestFrontEndPipeliningAndHandoff)
}

// runForwardingTests runs the tests whose requests go through a forwarding
// path, under whichever path and server the caller has chosen.
func runForwardingTests(t *testing.T) {
	t.Run("Routing", TestRoutingByHost)
	t.Run("Headers", TestHeaders)
	t.Run("SwapAndDrain", TestSwapAndDrain)
	t.Run("BackendFaults", TestBackendFaults)
	t.Run("Refused", TestRefusedConnectionQuarantines)
	t.Run("Queue", TestQueueTimeAndStats)
	t.Run("Informational", TestInformationalResponses)
	t.Run("Streaming", TestStreamingAndTrailers)
	t.Run("ClientGoesAway", TestClientGoesAway)
	t.Run("RequestLimits", TestRequestLimits)
	t.Run("Truncated", TestTruncatedResponse)
	t.Run("ClientWriteTimeout", TestClientWriteTimeout)
}
