package httpaddon_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
	"github.com/slipwayhq/slipway/addons/httpaddon"
)

const token = "provider-token-0123456789"

// server serves a Memory provisioner over the protocol, through wrap.
func server(t testing.TB, m *addontest.Memory, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	h, err := httpaddon.NewHandler(httpaddon.HandlerConfig{Provisioner: m, Authorize: httpaddon.BearerAuth(addons.NewSecret(token))})
	if err != nil {
		t.Fatal(err)
	}
	var hh http.Handler = http.StripPrefix("/v1", h)
	if wrap != nil {
		hh = wrap(hh)
	}
	srv := httptest.NewServer(hh) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func client(t testing.TB, srv *httptest.Server, mod func(*httpaddon.Config)) *httpaddon.Provisioner {
	t.Helper()
	cfg := httpaddon.Config{
		BaseURL:    srv.URL + "/v1",
		Auth:       httpaddon.Auth{Bearer: addons.NewSecret(token)},
		Service:    "memory",
		Plans:      []addons.Plan{{Name: "small"}, {Name: "large"}},
		PlanChange: true,
		Rotation:   true,
		Client:     srv.Client(),
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := httpaddon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformanceOverHTTP(t *testing.T) {
	m := &addontest.Memory{}
	srv := server(t, m, nil)
	addontest.Run(t, addontest.Suite{
		New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
			m.Logger = log
			return client(t, srv, func(c *httpaddon.Config) { c.Logger = log })
		},
		Use: func(ctx context.Context, creds addons.Config, target addons.Resource) error {
			return m.Use(ctx, creds, target.ID)
		},
	})
}

// flaky fails some requests before they reach the provider (503, with
// Retry-After) and loses the answer of others after the provider acted
// (the connection is closed), deterministically by request number.
func flaky(n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i := n.Add(1)
			switch {
			case i%3 == 0:
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"error":{"code":"unavailable"}}`, http.StatusServiceUnavailable)
			case i%5 == 0:
				next.ServeHTTP(httptest.NewRecorder(), r) // the provider acts
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close() // the answer is lost
				}
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// TestConformanceFlakyServer runs the whole suite against a provider
// whose answers are lost or refused transiently: retries with the
// Idempotency-Key must still make exactly one resource per request.
func TestConformanceFlakyServer(t *testing.T) {
	m := &addontest.Memory{}
	var n atomic.Int64
	srv := server(t, m, flaky(&n))
	addontest.Run(t, addontest.Suite{
		New: func(t testing.TB, log *slog.Logger) addons.Provisioner {
			return client(t, srv, func(c *httpaddon.Config) { c.Logger = log; c.MaxAttempts = 10 })
		},
		Use: func(ctx context.Context, creds addons.Config, target addons.Resource) error {
			return m.Use(ctx, creds, target.ID)
		},
	})
	if n.Load() < 20 {
		t.Fatalf("only %d requests reached the flaky server", n.Load())
	}
}

func TestIdempotencyKeySent(t *testing.T) {
	var got []string
	var mu sync.Mutex
	srv := server(t, &addontest.Memory{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, r.Method+" "+r.Header.Get("Idempotency-Key"))
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	})
	p := client(t, srv, nil)
	if _, err := p.Provision(context.Background(), addons.Request{RequestID: "rid-1", App: "a"}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "POST rid-1" {
		t.Fatalf("requests %v", got)
	}
}

func TestAuthRefusedIsNotRetriedNorLeaked(t *testing.T) {
	var n atomic.Int64
	srv := server(t, &addontest.Memory{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); next.ServeHTTP(w, r) })
	})
	for _, auth := range []httpaddon.Auth{
		{Bearer: addons.NewSecret("wrong-token-abcdefgh")},
		{Username: "u", Password: addons.NewSecret("wrong-password-abcdefgh")},
		{},
	} {
		n.Store(0)
		p := client(t, srv, func(c *httpaddon.Config) { c.Auth = auth })
		_, err := p.Provision(context.Background(), addons.Request{RequestID: "r", App: "a"})
		var se *httpaddon.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || addons.IsRetryable(err) {
			t.Fatalf("got %v", err)
		}
		if n.Load() != 1 {
			t.Errorf("%d requests for a refused credential, want 1", n.Load())
		}
		if strings.Contains(err.Error(), "wrong-") {
			t.Errorf("credential in error: %v", err)
		}
	}
}

func TestBoundedResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"x","config":{"URL":"`+strings.Repeat("a", 4<<20)+`"}}`)
	}))
	defer srv.Close()
	p := client(t, srv, func(c *httpaddon.Config) { c.MaxResponseBytes = 1 << 16 })
	_, err := p.Provision(context.Background(), addons.Request{RequestID: "r", App: "a"})
	if err == nil || !strings.Contains(err.Error(), "larger than") || addons.IsRetryable(err) {
		t.Fatalf("got %v", err)
	}
}

func TestAttemptTimeoutAndRetries(t *testing.T) {
	var n atomic.Int64
	m := &addontest.Memory{}
	srv := server(t, m, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= 2 {
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	p := client(t, srv, func(c *httpaddon.Config) { c.AttemptTimeout = 100 * time.Millisecond })
	start := time.Now()
	res, err := p.Provision(context.Background(), addons.Request{RequestID: "slow", App: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 || time.Since(start) > 2*time.Second {
		t.Errorf("%d attempts in %v", n.Load(), time.Since(start))
	}
	if err := m.Use(context.Background(), res.Config, res.ID); err != nil {
		t.Fatal(err)
	}

	// A server that never answers in time: bounded attempts, then a
	// retryable error.
	n.Store(-100)
	start = time.Now()
	_, err = p.Provision(context.Background(), addons.Request{RequestID: "never", App: "a"})
	if !errors.Is(err, addons.ErrUnavailable) || n.Load() != -96 {
		t.Fatalf("got %v after %d attempts", err, n.Load()+100)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("gave up after %v", time.Since(start))
	}
}

func TestAsyncProvisioning(t *testing.T) {
	var n atomic.Int64
	srv := server(t, &addontest.Memory{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && n.Add(1) <= 3 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusAccepted)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	p := client(t, srv, func(c *httpaddon.Config) { c.PollInterval = time.Millisecond })
	res, err := p.Provision(context.Background(), addons.Request{RequestID: "async", App: "a"})
	if err != nil || res.ID == "" || n.Load() != 4 {
		t.Fatalf("got %v %v after %d polls", res, err, n.Load())
	}
}

func TestRetryAfterIsBounded(t *testing.T) {
	var n atomic.Int64
	srv := server(t, &addontest.Memory{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	p := client(t, srv, nil)
	start := time.Now()
	if _, err := p.Provision(context.Background(), addons.Request{RequestID: "ra", App: "a"}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Retry-After was not capped by MaxBackoff: %v", time.Since(start))
	}
}

func TestUnsupportedWithoutCapability(t *testing.T) {
	var n atomic.Int64
	srv := server(t, &addontest.Memory{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); next.ServeHTTP(w, r) })
	})
	p := client(t, srv, func(c *httpaddon.Config) { c.PlanChange, c.Rotation = false, false })
	ctx := context.Background()
	if _, err := p.ChangePlan(ctx, "x", "small"); !errors.Is(err, addons.ErrUnsupported) {
		t.Error(err)
	}
	if _, err := p.Rotate(ctx, "x"); !errors.Is(err, addons.ErrUnsupported) {
		t.Error(err)
	}
	if err := p.Retire(ctx, "x"); !errors.Is(err, addons.ErrUnsupported) {
		t.Error(err)
	}
	if n.Load() != 0 {
		t.Errorf("%d requests sent", n.Load())
	}
}

func TestProtocolViolations(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      `<html>`,
		"no id":         `{"config":{"URL":"x"}}`,
		"bad id":        `{"id":"a b","config":{"URL":"x"}}`,
		"no config":     `{"id":"x"}`,
		"bad key":       `{"id":"x","config":{"url":"x"}}`,
		"wrong app":     `{"id":"x","app":"other","config":{"URL":"x"}}`,
		"non-string":    `{"id":"x","config":{"URL":1}}`,
		"secret in key": `{"id":"x","config":{"A B":"hunter2hunter2"}}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, body)
		}))
		p := client(t, srv, nil)
		_, err := p.Provision(context.Background(), addons.Request{RequestID: "r", App: "a"})
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: value in error %v", name, err)
		}
		srv.Close()
	}
}

func TestHandlerRefusals(t *testing.T) {
	srv := server(t, &addontest.Memory{}, nil)
	do := func(method, path, body, auth, key string) int {
		req, _ := http.NewRequest(method, srv.URL+"/v1"+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bearer := "Bearer " + token
	cases := []struct {
		method, path, body, auth, key string
		want                          int
	}{
		{"POST", "/resources", `{"request_id":"r","app":"a"}`, "", "", 401},
		{"POST", "/resources", `{"request_id":"r","app":"a"}`, "Bearer nope", "", 401},
		{"POST", "/resources", `{`, bearer, "", 400},
		{"POST", "/resources", `{"request_id":"r","app":"a"}`, bearer, "other", 400},
		{"POST", "/resources", `{"request_id":"r","app":"a","plan":"huge"}`, bearer, "", 422},
		{"POST", "/resources", `{"request_id":"r","app":"` + strings.Repeat("a", 100<<10) + `"}`, bearer, "", 413},
		{"POST", "/resources", `{"request_id":"r","app":"a"}`, bearer, "r", 201},
		{"POST", "/resources", `{"request_id":"r","app":"a"}`, bearer, "r", 201},
		{"POST", "/resources", `{"request_id":"r","app":"b"}`, bearer, "r", 409},
		{"GET", "/resources/nope", ``, bearer, "", 404},
		{"DELETE", "/resources/nope", ``, bearer, "", 404},
		{"GET", "/other", ``, bearer, "", 404},
	}
	for _, c := range cases {
		if got := do(c.method, c.path, c.body, c.auth, c.key); got != c.want {
			t.Errorf("%s %s %.40s: got %d, want %d", c.method, c.path, c.body, got, c.want)
		}
	}
}
