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
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

// echoUpgrade answers an Upgrade request with 101 and then echoes lines.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "echo" {
		io.WriteString(w, "plain")
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString(line)
		brw.Flush()
	}
}

func dialUpgrade(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 {
		t.Fatalf("upgrade: %d", res.StatusCode)
	}
	fmt.Fprintf(c, "hello\n")
	if line, err := br.ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	return c, br
}

func TestUpgradedConnectionsDrain(t *testing.T) {
	base := runtimeGoroutines()
	func() {
		tr := startRouter(t, Config{DrainTimeout: 200 * time.Millisecond})
		tr.SetHosts("app", []string{"app.test"})
		_, old := startBackend(t, "old", echoUpgrade)
		_, nw := startBackend(t, "new", echoUpgrade)
		setBackends(t, tr.Router, "app", old)
		c, br := dialUpgrade(t, tr.addr)
		defer c.Close()

		start := time.Now()
		d := setBackends(t, tr.Router, "app", nw)
		if err := d.Wait(context.Background()); !errors.Is(err, ErrDrainTimeout) {
			t.Errorf("Wait with an open WebSocket: %v, want ErrDrainTimeout", err)
		}
		if e := time.Since(start); e < 150*time.Millisecond {
			t.Errorf("drained after %s, before the 200ms drain timeout", e)
		}
		if _, err := br.ReadString('\n'); err == nil {
			t.Error("the upgraded connection is still open after the drain timeout")
		}
		if o := tr.rec.last(t); o.Status != 101 || o.Instance != "old" {
			t.Errorf("reported %+v", o)
		}

		// A connection open at Shutdown is closed by it.
		c2, br2 := dialUpgrade(t, tr.addr)
		defer c2.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := br2.ReadString('\n'); err == nil {
			t.Error("the upgraded connection is still open after Shutdown")
		}
	}()
	// startBackend's servers are closed by t.Cleanup, after this test
	// returns, so allow for their goroutines.
	checkGoroutines(t, base+4)
}

// TestReportingDoesNotAllocate: with a hook set, a request allocates no
// more than without one (the observe.Request is pooled).
func TestReportingDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop values at random")
	}
	_, b := startBackend(t, "web.1", nil)
	measure := func(hook observe.RequestHook, host string) float64 {
		rt, err := New(Config{Hook: hook})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		rt.SetHosts("app", []string{"app.test"})
		setBackends(t, rt, "app", b)
		w := &discardWriter{h: make(http.Header)}
		run := func() {
			req := httptest.NewRequest("GET", "http://"+host+"/", nil)
			req.Header.Set("X-Request-Id", "0123456789abcdefghij-KEPT")
			clear(w.h)
			rt.ServeHTTP(w, req)
		}
		run()
		// The transport's connection handling varies by an allocation
		// now and then: take the least of a few runs.
		least := testing.AllocsPerRun(200, run)
		for i := 0; i < 4; i++ {
			least = min(least, testing.AllocsPerRun(200, run))
		}
		return least
	}
	var sink int
	hook := observe.RequestHookFunc(func(r *observe.Request) { sink += r.Status })
	for _, host := range []string{"app.test", "unknown.test"} {
		without, with := measure(nil, host), measure(hook, host)
		t.Logf("%s: %.1f allocs per request without a hook, %.1f with one", host, without, with)
		if with > without {
			t.Errorf("%s: reporting to a hook allocates: %.1f > %.1f", host, with, without)
		}
	}
	if sink == 0 {
		t.Error("the hook was not called")
	}
}

type discardWriter struct {
	h http.Header
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func TestValidRequestID(t *testing.T) {
	for s, want := range map[string]bool{
		"":                         false,
		"short":                    false,
		strings.Repeat("a", 19):    false,
		strings.Repeat("a", 20):    true,
		strings.Repeat("A", 200):   true,
		strings.Repeat("a", 201):   false,
		"abcdefghij0123456789+/=-": true,
		"abcdefghij0123456789 xyz": false,
		"abcdefghij0123456789_xyz": false,
	} {
		if got := validRequestID(s); got != want {
			t.Errorf("validRequestID(%q) = %v", s, got)
		}
	}
	id := newRequestID()
	if len(id) != 36 || id[14] != '4' || !validRequestID(id) {
		t.Errorf("newRequestID() = %q", id)
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":      "example.com",
		"Example.COM:8080": "example.com",
		"example.com.":     "example.com",
		"[::1]:80":         "::1",
		"":                 "",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{QueueTimeout: -1},
		{ClientWriteTimeout: -time.Second},
		{Concurrency: -1},
		{HealthCheck: HealthCheck{Path: "health"}},
		{ACME: &ACME{}},
	}
	for i, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%d: Validate() = %v, want ErrInvalidConfig", i, err)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%d: New accepted an invalid config", i)
		}
	}
}
