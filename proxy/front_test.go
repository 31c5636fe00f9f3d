package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// smuggling lists request heads the front end must refuse, with the
// status it answers.
var smuggling = []struct {
	name, head string
	status     int
}{
	{"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400},
	{"two CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
	{"two equal CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400},
	{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400},
	{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\n", 400},
	{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
	{"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
	{"TE list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
	{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"TE other", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
	{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400},
	{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
	{"tab before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 3\r\n\r\n", 400},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
	{"obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
	{"bare LF in headers", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400},
	{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
	{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
	{"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
	{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
	{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
	{"no version", "GET /\r\nHost: a\r\n\r\n", 400},
	{"garbage", "GARBAGE\r\n\r\n", 400},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400},
	{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"control in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\n\r\n", 431},
}

func TestParseHeadRefusals(t *testing.T) {
	const max = 4096 + 4096
	for _, c := range smuggling {
		var h reqHead
		n, err := headEnd([]byte(c.head), max)
		if err == nil && n == 0 {
			t.Errorf("%s: head not complete", c.name)
			continue
		}
		if err == nil {
			err = parseHead(c.head[:n], &h)
		}
		var he *headError
		if !errors.As(err, &he) || he.status != c.status {
			t.Errorf("%s: %v, want a %d refusal", c.name, err, c.status)
		}
	}
}

func TestParseHeadAccepts(t *testing.T) {
	head := "GET /a%20b?x=1 HTTP/1.1\r\nhost: App.Test:8080\r\nx-multi: 1\r\nX-Multi:  2 \r\nContent-Length: 0\r\nX-Empty:\r\n\r\nGET /next"
	n, err := headEnd([]byte(head), 8192)
	if err != nil || n != strings.Index(head, "GET /next") {
		t.Fatalf("headEnd = %d, %v", n, err)
	}
	var h reqHead
	if err := parseHead(head[:n], &h); err != nil {
		t.Fatal(err)
	}
	if h.method != "GET" || h.target != "/a%20b?x=1" || h.minor != 1 || h.host != "App.Test:8080" || h.contentLength != 0 || h.chunked {
		t.Errorf("parsed %+v", h)
	}
	want := []headField{{"X-Multi", "1"}, {"X-Multi", "2"}, {"Content-Length", "0"}, {"X-Empty", ""}}
	if fmt.Sprint(h.fields) != fmt.Sprint(want) {
		t.Errorf("fields %q, want %q", h.fields, want)
	}
	if n, err := headEnd([]byte("GET / HTTP/1.1\r\nHost: a\r\n"), 8192); n != 0 || err != nil {
		t.Errorf("incomplete head: %d, %v", n, err)
	}
	if err := parseHead("PRI * HTTP/2.0\r\n\r\n", &h); err != errNotHTTP11 {
		t.Errorf("HTTP/2 preface: %v, want errNotHTTP11", err)
	}
}

// TestFrontEndRefusesSmuggling sends each refused head to a router: the
// client gets the refusal, the hook and the log get a code, and the
// instance never sees a request.
func TestFrontEndRefusesSmuggling(t *testing.T) {
	tr := startRouter(t, Config{MaxHeaderBytes: 4096})
	tr.SetHosts("app", []string{"a"})
	var seen atomic.Int64
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) { seen.Add(1) })
	setBackends(t, tr.Router, "app", b)
	for i, c := range smuggling {
		conn, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		// A smuggled second request follows the head.
		io.WriteString(conn, c.head+"3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		res.Body.Close()
		code := "H01"
		if c.status == 431 {
			code = "H02"
		}
		if res.StatusCode != c.status || res.Header.Get("X-Router-Error") != code || !res.Close {
			t.Errorf("%s: %d %s close=%v, want %d %s and close", c.name, res.StatusCode, res.Header.Get("X-Router-Error"), res.Close, c.status, code)
		}
		reports := tr.rec.waitReports(t, i+1)
		if o := reports[i]; o.Code != code || o.Status != c.status || o.RequestID != res.Header.Get("X-Request-Id") {
			t.Errorf("%s: reported %+v", c.name, o)
		}
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the instance saw %d requests", n)
	}
}

// TestFrontEndPipeliningAndHandoff sends pipelined requests on one
// connection, a request with a body among them (handed to net/http with
// what was read), and checks every answer arrives in order.
func TestFrontEndPipeliningAndHandoff(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})
	setBackends(t, tr.Router, "app", b)
	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	read := func(want string) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != want {
			t.Errorf("got %d %q, want %q", res.StatusCode, body, want)
		}
	}
	io.WriteString(conn, "GET /a HTTP/1.1\r\nHost: app.test\r\n\r\nHEAD /b HTTP/1.1\r\nHost: app.test\r\n\r\nGET /c HTTP/1.1\r\nHost: app.test\r\n\r\n")
	read("GET /a ")
	res, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", res, err)
	}
	read("GET /c ")
	io.WriteString(conn, "POST /d HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nxyzGET /e HTTP/1.1\r\nHost: app.test\r\n\r\n")
	read("POST /d xyz")
	read("GET /e ")
}

// TestFrontEndShutdown checks that Shutdown closes idle connections, lets
// a request in flight finish (telling its client to close) and leaves no
// goroutine behind.
func TestFrontEndShutdown(t *testing.T) {
	base := runtimeGoroutines()
	release := make(chan struct{})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	rt, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	errc := make(chan error, 1)
	go func() { errc <- rt.Serve(ln) }()
	rt.SetHosts("app", []string{"app.test"})
	setBackends(t, rt, "app", b)

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	idle, idleBR := dial()
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	res, err := http.ReadResponse(idleBR, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("first request: %v %v", res, err)
	}
	io.ReadAll(res.Body)
	busy, busyBR := dial()
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // in flight, and watched

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- rt.Shutdown(ctx)
	}()
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	res, err = http.ReadResponse(busyBR, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "ok" || !res.Close {
		t.Errorf("in-flight request: %d %q close=%v", res.StatusCode, body, res.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	checkGoroutines(t, base+2) // +2: the backend's httptest server
}

// TestTruncatedResponse checks that a response body cut short by the
// instance aborts the client's response (H18) instead of leaving the
// client waiting or reusing a connection out of step, for a body with a
// Content-Length and a chunked one; and that an instance's Connection:
// close is honoured.
func TestTruncatedResponse(t *testing.T) {
	tr := startRouter(t, Config{})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		switch r.URL.Path {
		case "/short":
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
		case "/chunked":
			brw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		default:
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		}
		brw.Flush()
	})
	setBackends(t, tr.Router, "app", b)
	for _, path := range []string{"/short", "/chunked"} {
		req, _ := http.NewRequest("GET", "http://"+tr.addr+path, nil)
		req.Host = "app.test"
		res, err := testClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if err == nil {
			t.Errorf("%s: the truncated body was read without error", path)
		}
		if o := tr.rec.last(t); o.Code != "H18" {
			t.Errorf("%s: reported %+v", path, o)
		}
	}
	for i := 0; i < 3; i++ {
		if res, body := tr.do(t, "GET", "app.test", "/close", nil, nil); res.StatusCode != 200 || body != "ok" {
			t.Errorf("Connection: close response %d: %d %q", i, res.StatusCode, body)
		}
	}
}

// TestFrontEndLimits checks the idle timeout between requests and a head
// that outgrows the first read buffer but not MaxHeaderBytes.
func TestFrontEndLimits(t *testing.T) {
	tr := startRouter(t, Config{ClientIdleTimeout: 300 * time.Millisecond, MaxHeaderBytes: 16 << 10})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(len(r.Header.Get("X-Big"))))
	})
	setBackends(t, tr.Router, "app", b)
	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for i := 0; i < 3; i++ {
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: "+strings.Repeat("b", 10000)+"\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(body) != "10000" {
			t.Fatalf("10 KB header: %d %q", res.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond) // idle, under the timeout
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle connection closed after %s, want about 300ms", d)
	}
}

// TestFrontEndACMEChallenge checks that with ACME on, HTTP-01 challenge
// paths are left to autocert's handler (through the hand-off) while other
// requests are routed.
func TestFrontEndACMEChallenge(t *testing.T) {
	tr := startRouter(t, Config{ACME: &ACME{Cache: autocert.DirCache(t.TempDir()), DirectoryURL: "http://127.0.0.1:1/directory"}})
	tr.SetHosts("app", []string{"app.test"})
	_, b := startBackend(t, "web.1", nil)
	setBackends(t, tr.Router, "app", b)
	for _, path := range []string{"/.well-known/acme-challenge/token", "/.well-known/acme%2Dchallenge/token"} {
		res, body := tr.do(t, "GET", "app.test", path, nil, nil)
		if res.StatusCode == 200 || body == "web.1" {
			t.Errorf("%s reached the app: %d %q", path, res.StatusCode, body)
		}
	}
	if res, body := tr.do(t, "GET", "app.test", "/", nil, nil); res.StatusCode != 200 || body != "web.1" {
		t.Errorf("routed request: %d %q", res.StatusCode, body)
	}
}

// TestFrontEndFramingMatchesNetHTTP sends the same requests through the
// front end and through net/http's server and compares what a client
// reads: status, body, trailers and the headers that matter for framing.
func TestFrontEndFramingMatchesNetHTTP(t *testing.T) {
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(304)
		case "/empty":
		case "/chunked":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(bytes.Repeat([]byte("z"), 100<<10))
		case "/status":
			w.WriteHeader(299)
			io.WriteString(w, "odd")
		default:
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Add("X-Multi", "1")
			w.Header().Add("X-Multi", "2")
			io.WriteString(w, "hello")
		}
	})
	type result struct {
		status  int
		body    string
		cl      int64
		te      []string
		headers string
	}
	fetch := func(noFrontEnd bool) map[string]result {
		testNoFrontEnd = noFrontEnd
		defer func() { testNoFrontEnd = false }()
		tr := startRouter(t, Config{})
		tr.SetHosts("app", []string{"app.test"})
		setBackends(t, tr.Router, "app", b)
		out := map[string]result{}
		for _, m := range []string{"GET", "HEAD"} {
			for _, p := range []string{"/", "/204", "/304", "/empty", "/chunked", "/big", "/status", "/missing-host"} {
				host := "app.test"
				if p == "/missing-host" {
					host = "nowhere.test"
				}
				res, body := tr.do(t, m, host, p, nil, nil)
				out[m+" "+p] = result{res.StatusCode, body, res.ContentLength, res.TransferEncoding,
					fmt.Sprint(res.Header["Content-Type"], res.Header["X-Multi"], res.Header["Etag"], res.Header["X-Router-Error"])}
			}
		}
		return out
	}
	want := fetch(true)
	got := fetch(false)
	for k, w := range want {
		g := got[k]
		if g.status != w.status || g.body != w.body || g.headers != w.headers {
			t.Errorf("%s: front end %+v, net/http %+v", k, g, w)
		}
		// Framing may differ (net/http computes a Content-Length for a
		// short handler output); a known length must agree.
		if g.cl >= 0 && w.cl >= 0 && g.cl != w.cl {
			t.Errorf("%s: Content-Length %d, net/http %d", k, g.cl, w.cl)
		}
	}
}
