package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

// Config configures a Router. The zero value is usable: every zero field
// means the documented default.
type Config struct {
	// Logger receives error lines (with the request id) and health
	// changes. If nil, nothing is logged.
	Logger *slog.Logger

	// Hook is told about every request the router handles. If nil,
	// nothing is reported and reporting costs no allocation.
	Hook observe.RequestHook

	// TrustedProxies are the client addresses (e.g. a load balancer in
	// front of the router) whose X-Forwarded-For, -Proto and -Port headers
	// are kept. If empty, no client is trusted and those headers are
	// replaced.
	TrustedProxies []netip.Prefix

	// Concurrency is how many requests one instance takes at once, like an
	// app server's worker count; more wait in the router. A Backend may
	// override it. If zero, 64.
	Concurrency int

	// QueueLength bounds how many requests may wait for a free instance
	// per app; more are refused with H11. If zero, 1024.
	QueueLength int

	// QueueTimeout bounds how long a request waits for a free healthy
	// instance before H10 or H11. If zero, 5s.
	QueueTimeout time.Duration

	// ConnectTimeout bounds connecting to an instance. If zero, 5s.
	ConnectTimeout time.Duration

	// FirstByteTimeout bounds the wait for the response headers once the
	// request was sent (H12). If zero, 30s, as on Heroku.
	FirstByteTimeout time.Duration

	// IdleTimeout is the rolling window after the first response byte:
	// when an instance sends nothing for this long the response is
	// aborted (H18). It also applies to upgraded connections. If zero,
	// 55s, as on Heroku.
	IdleTimeout time.Duration

	// ReadHeaderTimeout bounds reading a client's request headers, against
	// slowloris. If zero, 10s.
	ReadHeaderTimeout time.Duration

	// ClientIdleTimeout bounds how long a client connection may sit idle
	// between requests. If zero, 60s.
	ClientIdleTimeout time.Duration

	// ClientWriteTimeout is the rolling window for writing to a client:
	// every write to the connection must make progress within it, however
	// long the whole response takes. Otherwise (a client that stopped
	// reading: a slow-read attack, a dead peer) the connection is closed
	// and a request in progress is cancelled at its instance and reported
	// as H28. One write is at most 32 KiB, so a client that reads less
	// than that per window is cut off too. It also applies to upgraded
	// connections (whose instance side keeps IdleTimeout), on the
	// listeners of Serve and ServeTLS; not when the Router is a handler
	// of another server. If zero, 55s, as on Heroku.
	ClientWriteTimeout time.Duration

	// MaxHeaderBytes bounds the size of a request's headers (431 beyond).
	// If zero, 64 KiB.
	MaxHeaderBytes int

	// MaxBodyBytes bounds the size of a request body (413, H25). If zero,
	// bodies are not limited; if negative, requests with bodies are
	// refused.
	MaxBodyBytes int64

	// MaxConns bounds the client connections each listener holds at once;
	// more wait in the kernel's accept queue. If zero, 10000.
	MaxConns int

	// MaxIdleConnsPerBackend bounds the idle keep-alive connections kept
	// to each instance. If zero, 256.
	MaxIdleConnsPerBackend int

	// Quarantine is how long an instance that refused a connection is left
	// out. If zero, 5s, as on Heroku.
	Quarantine time.Duration

	// DrainTimeout bounds how long removed instances may finish their
	// in-flight requests; then their connections (WebSockets included)
	// are closed. If zero, 30s.
	DrainTimeout time.Duration

	// HealthCheck configures the active health checks.
	HealthCheck HealthCheck

	// ACME turns on automatic certificates for ServeTLS. If nil, ServeTLS
	// needs GetCertificate.
	ACME *ACME

	// GetCertificate, if set and ACME is nil, supplies certificates for
	// ServeTLS (e.g. from a static certificate store).
	GetCertificate func(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// HealthCheck configures the router's active health checks.
type HealthCheck struct {
	// Interval between two checks of one instance. If zero, 2s.
	Interval time.Duration
	// Timeout of one check. If zero, 1s.
	Timeout time.Duration
	// Path, if set, is fetched with GET over HTTP after the TCP connect
	// succeeds; any status other than 2xx or 3xx fails the check. If
	// empty, a TCP connect is the whole check.
	Path string
	// Failures is how many checks in a row must fail before an instance is
	// taken out of rotation. If zero, 2.
	Failures int
}

// ErrInvalidConfig is wrapped by the errors Config.Validate returns.
var ErrInvalidConfig = errors.New("proxy: invalid config")

// Validate reports whether c makes sense.
func (c *Config) Validate() error {
	neg := func(name string, d time.Duration) error {
		if d < 0 {
			return fmt.Errorf("%w: %s is negative (%s)", ErrInvalidConfig, name, d)
		}
		return nil
	}
	for _, e := range []error{
		neg("QueueTimeout", c.QueueTimeout), neg("ConnectTimeout", c.ConnectTimeout),
		neg("FirstByteTimeout", c.FirstByteTimeout), neg("IdleTimeout", c.IdleTimeout),
		neg("ReadHeaderTimeout", c.ReadHeaderTimeout), neg("ClientIdleTimeout", c.ClientIdleTimeout),
		neg("ClientWriteTimeout", c.ClientWriteTimeout),
		neg("Quarantine", c.Quarantine), neg("DrainTimeout", c.DrainTimeout),
		neg("HealthCheck.Interval", c.HealthCheck.Interval), neg("HealthCheck.Timeout", c.HealthCheck.Timeout),
	} {
		if e != nil {
			return e
		}
	}
	if c.Concurrency < 0 || c.QueueLength < 0 || c.MaxHeaderBytes < 0 || c.MaxConns < 0 ||
		c.MaxIdleConnsPerBackend < 0 || c.HealthCheck.Failures < 0 {
		return fmt.Errorf("%w: Concurrency, QueueLength, MaxHeaderBytes, MaxConns, MaxIdleConnsPerBackend and HealthCheck.Failures must not be negative", ErrInvalidConfig)
	}
	if p := c.HealthCheck.Path; p != "" && p[0] != '/' {
		return fmt.Errorf("%w: HealthCheck.Path %q must start with '/'", ErrInvalidConfig, p)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("%w: an entry of TrustedProxies is not a valid prefix", ErrInvalidConfig)
		}
	}
	if c.ACME != nil {
		if err := c.ACME.validate(); err != nil {
			return err
		}
	}
	return nil
}

func orDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Concurrency = orInt(c.Concurrency, 64)
	c.QueueLength = orInt(c.QueueLength, 1024)
	c.QueueTimeout = orDur(c.QueueTimeout, 5*time.Second)
	c.ConnectTimeout = orDur(c.ConnectTimeout, 5*time.Second)
	c.FirstByteTimeout = orDur(c.FirstByteTimeout, 30*time.Second)
	c.IdleTimeout = orDur(c.IdleTimeout, 55*time.Second)
	c.ReadHeaderTimeout = orDur(c.ReadHeaderTimeout, 10*time.Second)
	c.ClientIdleTimeout = orDur(c.ClientIdleTimeout, 60*time.Second)
	c.ClientWriteTimeout = orDur(c.ClientWriteTimeout, 55*time.Second)
	c.MaxHeaderBytes = orInt(c.MaxHeaderBytes, 64<<10)
	c.MaxConns = orInt(c.MaxConns, 10000)
	c.MaxIdleConnsPerBackend = orInt(c.MaxIdleConnsPerBackend, 256)
	c.Quarantine = orDur(c.Quarantine, 5*time.Second)
	c.DrainTimeout = orDur(c.DrainTimeout, 30*time.Second)
	c.HealthCheck.Interval = orDur(c.HealthCheck.Interval, 2*time.Second)
	c.HealthCheck.Timeout = orDur(c.HealthCheck.Timeout, time.Second)
	c.HealthCheck.Failures = orInt(c.HealthCheck.Failures, 2)
	return c
}
