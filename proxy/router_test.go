package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/internal/testenv"
)

func TestRoutingByHost(t *testing.T) {
	tr := startRouter(t, Config{})
	var hitsB atomic.Int64
	_, a := startBackend(t, "a", nil)
	_, b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		hitsB.Add(1)
		io.WriteString(w, "b")
	})
	if err := tr.SetHosts("app-a", []string{"A.example.com", "*.apps.example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetHosts("app-b", []string{"b.example.com"}); err != nil {
		t.Fatal(err)
	}
	setBackends(t, tr.Router, "app-a", a)
	setBackends(t, tr.Router, "app-b", b)

	for _, c := range []struct {
		host, want string
		status     int
	}{
		{"a.example.com", "a", 200},
		{"A.EXAMPLE.COM:8080", "a", 200},
		{"a.example.com.", "a", 200},
		{"x.apps.example.com", "a", 200},
		{"X.Apps.Example.Com:443", "a", 200},
		{"b.example.com", "b", 200},
		{"y.x.apps.example.com", "", 404}, // a wildcard matches one label
		{"apps.example.com", "", 404},
		{"nope.example.com", "", 404},
	} {
		res, body := tr.do(t, "GET", c.host, "/", nil, nil)
		if res.StatusCode != c.status || c.status == 200 && body != c.want {
			t.Errorf("%s: %d %q, want %d %q", c.host, res.StatusCode, body, c.status, c.want)
		}
		if c.status == 404 && res.Header.Get("X-Router-Error") != "H00" {
			t.Errorf("%s: X-Router-Error %q, want H00", c.host, res.Header.Get("X-Router-Error"))
		}
	}
	if err := tr.SetHosts("app-b", []string{"a.example.com"}); !errors.Is(err, ErrHostTaken) {
		t.Errorf("taking another app's host: %v, want ErrHostTaken", err)
	}
	if err := tr.SetHosts("app-b", []string{"bad host"}); !errors.Is(err, ErrInvalidHost) {
		t.Errorf("invalid host: %v, want ErrInvalidHost", err)
	}

	hitsB.Store(0)
	tr.rec.mu.Lock()
	tr.rec.reqs = nil
	tr.rec.mu.Unlock()
	res, body := tr.do(t, "GET", "unknown.test", "/x?y=1", nil, nil)
	if res.StatusCode != 404 || !strings.Contains(body, "H00") {
		t.Errorf("unknown host: %d %q", res.StatusCode, body)
	}
	o := tr.rec.last(t)
	if o.Code != "H00" || o.Status != 404 || o.Host != "unknown.test" || o.App != "" || o.Path != "/x" {
		t.Errorf("reported %+v", o)
	}
	if hitsB.Load() != 0 {
		t.Error("a backend was touched for an unknown host")
	}

	d := tr.RemoveApp("app-b")
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res, _ := tr.do(t, "GET", "b.example.com", "/", nil, nil); res.StatusCode != 404 {
		t.Errorf("removed app: %d, want 404", res.StatusCode)
	}
}

func TestHeaders(t *testing.T) {
	tr := startRouter(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	seen := make(chan http.Header, 1)
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
	})
	tr.SetHosts("app", []string{"app.test"})
	setBackends(t, tr.Router, "app", b)
	_, port, _ := net.SplitHostPort(tr.addr)

	before := time.Now().UnixMilli()
	res, _ := tr.do(t, "GET", "app.test", "/", nil, http.Header{
		"X-Forwarded-For":   {"6.6.6.6"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Port":  {"443"},
		"X-Forwarded-Host":  {"evil.test"},
		"Forwarded":         {"for=6.6.6.6"},
		"X-Request-Start":   {"1"},
		"X-Request-Id":      {"short"},
	})
	after := time.Now().UnixMilli()
	h := <-seen
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the client's address only", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto %q", got)
	}
	if got := h.Get("X-Forwarded-Port"); got != port {
		t.Errorf("X-Forwarded-Port %q, want %s", got, port)
	}
	if h.Get("Forwarded") != "" || h.Get("X-Forwarded-Host") != "" {
		t.Errorf("Forwarded/X-Forwarded-Host kept: %v", h)
	}
	if h.Get("Host") != "app.test" {
		t.Errorf("Host %q", h.Get("Host"))
	}
	start, err := strconv.ParseInt(h.Get("X-Request-Start"), 10, 64)
	if err != nil || start < before || start > after {
		t.Errorf("X-Request-Start %q not in [%d, %d]", h.Get("X-Request-Start"), before, after)
	}
	id := h.Get("X-Request-Id")
	if len(id) != 36 || id == "short" {
		t.Errorf("X-Request-Id %q, want a new UUID", id)
	}
	if o := tr.rec.last(t); o.RequestID != id || o.App != "app" || o.ProcessType != "web" || o.Instance != "web.1" || o.Status != 200 || o.Code != "" {
		t.Errorf("reported %+v", o)
	}

	good := "abcdefghijABCDEFGHIJ0123+/=-"
	tr.do(t, "GET", "app.test", "/", nil, http.Header{"X-Request-Id": {good}})
	if got := (<-seen).Get("X-Request-Id"); got != good {
		t.Errorf("valid client X-Request-Id %q replaced by %q", good, got)
	}
	tr.do(t, "GET", "app.test", "/", nil, http.Header{"X-Request-Id": {strings.Repeat("a", 201)}})
	if got := (<-seen).Get("X-Request-Id"); len(got) != 36 {
		t.Errorf("too long X-Request-Id kept: %q", got)
	}

	// From a trusted proxy, the forwarded headers are kept and extended.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", tr.addr)
	if err != nil {
		testenv.Missing(t, "cannot bind 127.0.0.2: "+err.Error())
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n\r\n")
	res, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	h = <-seen
	if h.Get("X-Forwarded-For") != "1.2.3.4, 127.0.0.2" || h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-Port") != "443" {
		t.Errorf("trusted proxy headers: %v", h)
	}
}

func TestSwapAndDrain(t *testing.T) {
	tr := startRouter(t, Config{DrainTimeout: 5 * time.Second})
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	_, old := startBackend(t, "old", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "old")
	})
	_, nw := startBackend(t, "new", nil)
	tr.SetHosts("app", []string{"app.test"})
	setBackends(t, tr.Router, "app", old)

	slow := make(chan string, 1)
	go func() {
		_, body := tr.do(t, "GET", "app.test", "/slow", nil, nil)
		slow <- body
	}()
	<-started
	d := setBackends(t, tr.Router, "app", nw)
	if got := d.Backends(); len(got) != 1 || got[0] != "old" {
		t.Fatalf("draining %v", got)
	}
	for i := 0; i < 10; i++ {
		if _, body := tr.do(t, "GET", "app.test", "/", nil, nil); body != "new" {
			t.Fatalf("after the swap a request went to %q", body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := d.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a request in flight: %v", err)
	}
	cancel()
	close(release)
	if err := d.Wait(context.Background()); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if body := <-slow; body != "old" {
		t.Errorf("in-flight request got %q", body)
	}
	// Setting the same backends again keeps them and drains nothing.
	if d := setBackends(t, tr.Router, "app", nw); len(d.Backends()) != 0 {
		t.Errorf("re-setting drained %v", d.Backends())
	}
}

// TestSwapIsAtomic swaps between two sets while requests run: every
// request is answered by an instance of one of the sets, never fails.
func TestSwapIsAtomic(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	var sets [2][]Backend
	for s := 0; s < 2; s++ {
		for i := 0; i < 3; i++ {
			_, b := startBackend(t, fmt.Sprintf("set%d.%d", s, i), nil)
			sets[s] = append(sets[s], b)
		}
	}
	setBackends(t, tr.Router, "app", sets[0]...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+tr.addr+"/", nil)
				req.Host = "app.test"
				res, err := testClient.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		d := setBackends(t, tr.Router, "app", sets[(i+1)%2]...)
		if err := d.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d requests failed during swaps", n)
	}
}

func TestNewBackendMustBeHealthy(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	_, good := startBackend(t, "good", nil)
	setBackends(t, tr.Router, "app", good)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := tr.SetBackends(ctx, "app", []Backend{{ID: "bad", Addr: closedAddr(t)}})
	var he *HealthError
	if !errors.Is(err, ErrUnhealthy) || !errors.As(err, &he) || he.Backends[0] != "bad" {
		t.Fatalf("SetBackends with a dead backend: %v", err)
	}
	if _, body := tr.do(t, "GET", "app.test", "/", nil, nil); body != "good" {
		t.Errorf("table changed after a failed SetBackends: %q", body)
	}
	if _, err := tr.SetBackends(ctx, "app", []Backend{{ID: "x", Addr: "nope"}}); !errors.Is(err, ErrInvalidBackend) {
		t.Errorf("bad address: %v", err)
	}
}

// TestPowerOfTwoChoicesBeatsRoundRobin runs the same load, one slow and
// one fast instance, through the router and through a round-robin proxy:
// balancing on outstanding requests sends most requests to the fast one
// and has a lower mean latency.
func TestPowerOfTwoChoicesBeatsRoundRobin(t *testing.T) {
	var fast, slow atomic.Int64
	_, f := startBackend(t, "fast", func(w http.ResponseWriter, r *http.Request) {
		fast.Add(1)
		time.Sleep(time.Millisecond)
	})
	_, s := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		slow.Add(1)
		time.Sleep(50 * time.Millisecond)
	})
	load := func(addr string) (share float64, mean time.Duration) {
		fast.Store(0)
		slow.Store(0)
		var wg sync.WaitGroup
		var total atomic.Int64
		const clients, each = 8, 25
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
					req.Host = "app.test"
					start := time.Now()
					res, err := testClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					total.Add(int64(time.Since(start)))
				}
			}()
		}
		wg.Wait()
		n := fast.Load() + slow.Load()
		return float64(fast.Load()) / float64(n), time.Duration(total.Load() / n)
	}

	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	setBackends(t, tr.Router, "app", f, s)

	var next atomic.Uint64
	addrs := []string{f.Addr, s.Addr}
	rr := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme = "http"
		pr.Out.URL.Host = addrs[next.Add(1)%2]
	}})
	defer rr.Close()

	// Latency on a loaded machine is noisy: the router must win one of
	// three interleaved rounds on mean latency, and every round on share.
	won := false
	for round := 0; round < 3 && !won; round++ {
		p2cShare, p2cMean := load(tr.addr)
		rrShare, rrMean := load(strings.TrimPrefix(rr.URL, "http://"))
		t.Logf("power of two choices: fast share %.2f, mean latency %s; round robin: fast share %.2f, mean latency %s",
			p2cShare, p2cMean, rrShare, rrMean)
		if p2cShare < 0.7 {
			t.Errorf("fast instance got %.2f of the requests, want >= 0.7 (round robin: %.2f)", p2cShare, rrShare)
		}
		won = p2cMean < rrMean
	}
	if !won {
		t.Error("mean latency not better than round robin's in any round")
	}
}

func TestQueueTimeAndStats(t *testing.T) {
	tr := startRouter(t, Config{Concurrency: 1})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond)
	})
	setBackends(t, tr.Router, "app", b)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, _ := tr.do(t, "GET", "app.test", "/", nil, nil); res.StatusCode != 200 {
				t.Errorf("status %d", res.StatusCode)
			}
		}()
	}
	wg.Wait()
	reps := tr.rec.waitReports(t, 4)
	var maxQ time.Duration
	for _, o := range reps {
		maxQ = max(maxQ, o.QueueTime)
	}
	if maxQ < 100*time.Millisecond {
		t.Errorf("longest reported queue time %s, want >= 100ms (4 requests, one slot, 40ms each)", maxQ)
	}
	q, ok := tr.QueueStats("app", time.Minute)
	if !ok {
		t.Fatal("no stats")
	}
	t.Logf("%+v", q)
	if q.Requests != 4 || q.Max != maxQ || q.P95 < 50*time.Millisecond || q.P50 > q.P95 || q.Instances != 1 || q.Capacity != 1 || q.ProcessType != "web" {
		t.Errorf("stats %+v", q)
	}
	if _, ok := tr.QueueStats("nope", 0); ok {
		t.Error("stats for an unknown app")
	}
}

func TestBacklogTooDeep(t *testing.T) {
	tr := startRouter(t, Config{Concurrency: 1, QueueLength: 1, QueueTimeout: 300 * time.Millisecond})
	tr.SetHosts("app", []string{"app.test"})
	release := make(chan struct{})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) { <-release })
	setBackends(t, tr.Router, "app", b)
	codes := make(chan string, 3)
	for i := 0; i < 3; i++ {
		go func() {
			res, _ := tr.do(t, "GET", "app.test", "/", nil, nil)
			codes <- strconv.Itoa(res.StatusCode) + res.Header.Get("X-Router-Error")
		}()
	}
	// One holds the slot, one waits (and times out: H11, instances are
	// busy, not down), one is refused at once (H11, queue full).
	got := map[string]int{}
	got[<-codes]++
	got[<-codes]++
	close(release)
	got[<-codes]++
	if got["503H11"] != 2 || got["200"] != 1 {
		t.Errorf("outcomes %v, want two 503 H11 and one 200", got)
	}
	q, _ := tr.QueueStats("app", 0)
	if q.Rejected != 2 {
		t.Errorf("rejected %d, want 2", q.Rejected)
	}
}

func TestBackendFaults(t *testing.T) {
	tr := startRouter(t, Config{FirstByteTimeout: 200 * time.Millisecond, QueueTimeout: 300 * time.Millisecond,
		HealthCheck: HealthCheck{Interval: 50 * time.Millisecond, Path: "/health", Failures: 1}})
	_, reset := startBackend(t, "reset", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		c, _, _ := http.NewResponseController(w).Hijack()
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	hang := make(chan struct{})
	defer close(hang)
	_, hung := startBackend(t, "hung", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	var sick atomic.Bool
	var sickHits atomic.Int64
	_, broken := startBackend(t, "broken", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if sick.Load() {
				w.WriteHeader(500)
			}
			return
		}
		sickHits.Add(1)
	})
	for app, b := range map[string]Backend{"reset": reset, "hung": hung, "broken": broken} {
		tr.SetHosts(app, []string{app + ".test"})
		setBackends(t, tr.Router, app, b)
	}
	tr.SetHosts("empty", []string{"empty.test"})

	check := func(host string, status int, code string) {
		t.Helper()
		res, body := tr.do(t, "GET", host, "/", nil, nil)
		if res.StatusCode != status || res.Header.Get("X-Router-Error") != code || !strings.Contains(body, code) {
			t.Errorf("%s: %d %s %q, want %d %s", host, res.StatusCode, res.Header.Get("X-Router-Error"), body, status, code)
		}
		if o := tr.rec.last(t); o.Code != code || o.Status != status || o.Host != host {
			t.Errorf("%s: reported %+v", host, o)
		}
	}
	check("reset.test", 503, "H13")
	start := time.Now()
	check("hung.test", 503, "H12")
	if d := time.Since(start); d < 200*time.Millisecond || d > 10*time.Second {
		t.Errorf("H12 after %s, want 200ms (plus scheduling delay)", d)
	}
	check("empty.test", 503, "H14")

	sick.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for q, _ := tr.QueueStats("broken", 0); q.Healthy != 0; q, _ = tr.QueueStats("broken", 0) {
		if time.Now().After(deadline) {
			t.Fatal("the broken instance was not taken out of rotation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sickHits.Store(0)
	start = time.Now()
	check("broken.test", 503, "H10")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("H10 after %s, want after the 300ms queue wait", d)
	}
	if sickHits.Load() != 0 {
		t.Error("an unhealthy instance got a request")
	}
	sick.Store(false)
	deadline = time.Now().Add(2 * time.Second)
	for q, _ := tr.QueueStats("broken", 0); q.Healthy != 1; q, _ = tr.QueueStats("broken", 0) {
		if time.Now().After(deadline) {
			t.Fatal("the instance did not come back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	check("broken.test", 200, "")
}

func TestRefusedConnectionQuarantines(t *testing.T) {
	tr := startRouter(t, Config{Quarantine: time.Minute, HealthCheck: HealthCheck{Interval: time.Hour}})
	tr.SetHosts("app", []string{"app.test"})
	srv, dead := startBackend(t, "dead", nil)
	_, live := startBackend(t, "live", nil)
	setBackends(t, tr.Router, "app", dead, live)
	srv.Close()
	for i := 0; i < 20; i++ {
		res, body := tr.do(t, "GET", "app.test", "/", nil, nil)
		if res.StatusCode != 200 || body != "live" {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
	}
	q, _ := tr.QueueStats("app", 0)
	if q.Healthy != 1 {
		t.Errorf("healthy %d, want 1 (dead one quarantined)", q.Healthy)
	}
	// With every instance refusing: H21 after retries.
	tr2 := startRouter(t, Config{QueueTimeout: 100 * time.Millisecond, HealthCheck: HealthCheck{Interval: time.Hour}})
	tr2.SetHosts("app", []string{"app.test"})
	srv2, only := startBackend(t, "only", nil)
	setBackends(t, tr2.Router, "app", only)
	srv2.Close()
	res, _ := tr2.do(t, "GET", "app.test", "/", nil, nil)
	if res.StatusCode != 503 || res.Header.Get("X-Router-Error") != "H21" {
		t.Errorf("all refusing: %d %s, want 503 H21", res.StatusCode, res.Header.Get("X-Router-Error"))
	}
	res, _ = tr2.do(t, "GET", "app.test", "/", nil, nil)
	if res.StatusCode != 503 || res.Header.Get("X-Router-Error") != "H10" {
		t.Errorf("all quarantined: %d %s, want 503 H10", res.StatusCode, res.Header.Get("X-Router-Error"))
	}
}

func TestRequestLimits(t *testing.T) {
	tr := startRouter(t, Config{MaxBodyBytes: 1000, MaxHeaderBytes: 4096})
	tr.SetHosts("app", []string{"app.test"})
	var got atomic.Int64
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	setBackends(t, tr.Router, "app", b)

	res, body := tr.do(t, "POST", "app.test", "/", strings.NewReader(strings.Repeat("x", 1000)), nil)
	if res.StatusCode != 200 || body != "1000" {
		t.Errorf("body at the limit: %d %q", res.StatusCode, body)
	}
	if o := tr.rec.last(t); o.BytesIn != 1000 || o.BytesOut != 4 {
		t.Errorf("bytes reported %+v", o)
	}
	res, _ = tr.do(t, "POST", "app.test", "/", strings.NewReader(strings.Repeat("x", 1001)), nil)
	if res.StatusCode != 413 || res.Header.Get("X-Router-Error") != "H25" {
		t.Errorf("Content-Length over the limit: %d %s", res.StatusCode, res.Header.Get("X-Router-Error"))
	}
	// Chunked, no Content-Length: cut off while streaming.
	res, _ = tr.do(t, "POST", "app.test", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), nil)
	if res.StatusCode != 413 || res.Header.Get("X-Router-Error") != "H25" {
		t.Errorf("chunked body over the limit: %d %s", res.StatusCode, res.Header.Get("X-Router-Error"))
	}
	if o := tr.rec.last(t); o.Code != "H25" {
		t.Errorf("reported %+v", o)
	}

	raw := func(req string) (int, string) {
		c, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := raw("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"); code != 431 {
		t.Errorf("oversized headers: %d, want 431", code)
	}
	if code, _ := raw("GARBAGE\r\n\r\n"); code != 400 {
		t.Errorf("malformed request line: %d, want 400", code)
	}
	if code, _ := raw("POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"); code != 400 {
		t.Errorf("conflicting Content-Length: %d, want 400", code)
	}
	got.Store(-1)
	code, body := raw("POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if testNoFrontEnd {
		// net/http reads Content-Length with chunked as chunked and
		// forwards it without the Content-Length; the smuggled
		// request never reaches the app.
		if code != 200 || body != "3" {
			t.Errorf("CL+TE: %d %q, want the chunked body of 3 bytes", code, body)
		}
		return
	}
	// The front end refuses it, and reports what it refuses.
	if code != 400 || got.Load() != -1 {
		t.Errorf("CL+TE: %d, instance saw %d bytes; want 400 and nothing forwarded", code, got.Load())
	}
	if o := tr.rec.last(t); o.Code != "H01" || o.Status != 400 || o.Method != "POST" || o.Host != "app.test" {
		t.Errorf("CL+TE reported %+v", o)
	}
	if code, _ := raw("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"); code != 431 {
		t.Errorf("oversized headers: %d, want 431", code)
	}
	if o := tr.rec.last(t); o.Code != "H02" || o.Status != 431 {
		t.Errorf("oversized headers reported %+v", o)
	}
}

func TestSlowClientFlood(t *testing.T) {
	base := runtimeGoroutines()
	rt, err := New(Config{ReadHeaderTimeout: 300 * time.Millisecond, MaxConns: 50})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	errc := make(chan error, 1)
	go func() { errc <- rt.Serve(ln) }()
	_, b := startBackend(t, "web.1", nil)
	rt.SetHosts("app", []string{"app.test"})
	setBackends(t, rt, "app", b)

	var conns []net.Conn
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ")
		conns = append(conns, c)
	}
	if n := runtimeGoroutines(); n > base+80 {
		t.Errorf("%d goroutines with 100 slow clients and MaxConns 50 (base %d)", n, base)
	}
	// The slow clients are cut off at ReadHeaderTimeout; then a normal
	// client gets through.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow client %d was not cut off by ReadHeaderTimeout", i)
		}
		c.Close()
	}
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	req.Host = "app.test"
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("after the flood: %d", res.StatusCode)
	}
	testClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	checkGoroutines(t, base+2) // +2: the backend's httptest server
}

func TestInformationalResponses(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("X-Final", "yes")
		io.WriteString(w, "done")
	})
	setBackends(t, tr.Router, "app", b)
	c, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 103 || res.Header.Get("Link") == "" {
		t.Fatalf("first response %d %v, want 103 with Link", res.StatusCode, res.Header)
	}
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Link") != "" || res.Header.Get("X-Final") != "yes" || string(body) != "done" {
		t.Errorf("final response %d %v %q", res.StatusCode, res.Header, body)
	}
}

func TestStreamingAndTrailers(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "3")
	})
	setBackends(t, tr.Router, "app", b)
	req, _ := http.NewRequest("GET", "http://"+tr.addr+"/", nil)
	req.Host = "app.test"
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "part 0\npart 1\npart 2\n" || res.Trailer.Get("X-Sum") != "3" {
		t.Errorf("body %q trailer %v", body, res.Trailer)
	}
	// HEAD gets the headers and no body.
	res, body2 := tr.do(t, "HEAD", "app.test", "/", nil, nil)
	if res.StatusCode != 200 || body2 != "" {
		t.Errorf("HEAD: %d %q", res.StatusCode, body2)
	}
}

func TestStalePooledConnection(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.IdleTimeout = 20 * time.Millisecond // closes pooled connections behind the router's back
	srv.Start()
	defer srv.Close()
	setBackends(t, tr.Router, "app", Backend{ID: "web.1", Addr: strings.TrimPrefix(srv.URL, "http://")})
	for i := 0; i < 5; i++ {
		if res, body := tr.do(t, "GET", "app.test", "/", nil, nil); res.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
		time.Sleep(60 * time.Millisecond)
	}
}

func TestClientGoesAway(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	gone := make(chan struct{})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the router closed its connection
		close(gone)
	})
	setBackends(t, tr.Router, "app", b)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+tr.addr+"/", nil)
	req.Host = "app.test"
	if _, err := testClient.Do(req); err == nil {
		t.Fatal("no error")
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the instance's request was not cancelled when the client went away")
	}
	if o := tr.rec.last(t); o.Code != "H27" || o.Status != 499 {
		t.Errorf("reported %+v", o)
	}
}

func TestAbsoluteFormRequest(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	seen := make(chan string, 1)
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) { seen <- r.RequestURI + " " + r.Host })
	setBackends(t, tr.Router, "app", b)
	c, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET http://app.test/a?b=c HTTP/1.1\r\nHost: app.test\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := <-seen; got != "/a?b=c app.test" {
		t.Errorf("instance saw %q", got)
	}
}

func TestRemoveAndReAdd(t *testing.T) {
	tr := startRouter(t, Config{})
	_, b := startBackend(t, "web.1", nil)
	tr.SetHosts("app", []string{"app.test"})
	setBackends(t, tr.Router, "app", b)
	if err := tr.RemoveApp("app").Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tr.Apps(); len(got) != 0 {
		t.Fatalf("apps after RemoveApp: %v", got)
	}
	tr.SetHosts("app", []string{"app.test"})
	setBackends(t, tr.Router, "app", b)
	if res, body := tr.do(t, "GET", "app.test", "/", nil, nil); res.StatusCode != 200 || body != "web.1" {
		t.Errorf("after re-adding: %d %q", res.StatusCode, body)
	}
	if qs := tr.AllQueueStats(0); len(qs) != 1 || qs[0].App != "app" || qs[0].Requests != 1 {
		t.Errorf("AllQueueStats %+v", qs)
	}
}
