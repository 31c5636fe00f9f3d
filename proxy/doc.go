// Package proxy is Slipway's router: the HTTP front door of every app.
//
// A [Router] maps request hosts (exact names and "*.example.com" wildcards,
// case-insensitive, port stripped) to an app's web instances and forwards
// each request to one of them. It is an [net/http.Handler] and also serves
// its own listeners ([Router.Serve], [Router.ServeTLS], [Router.Shutdown]).
//
// # Route table
//
// The route table is immutable and swapped atomically: a request sees either
// the old or the new set of hosts and instances, never a mix, and the control
// plane ([Router.SetHosts], [Router.SetBackends], [Router.RemoveApp]) never
// blocks the request path. SetBackends health-checks instances that are new
// to the app before they join, and returns a [Drain] that reports when the
// instances it removed have finished their in-flight requests (WebSockets
// and other upgraded connections included; they are closed at
// Config.DrainTimeout).
//
// # Balancing, queueing and queue time
//
// Each instance takes at most a configured number of concurrent requests
// (like an app server's worker count). Requests pick among healthy instances
// with the power of two choices on outstanding requests; when every instance
// is busy, they wait in the router in a bounded FIFO queue for a bounded
// time. The router measures that wait itself, on one monotonic clock, and
// exports it per app and process type through [Router.QueueStats] and
// [Router.AllQueueStats]: the autoscaler's signal. Instances that refuse connections are quarantined
// (Config.Quarantine, 5 s by default); an active health check (TCP connect,
// optionally an HTTP path) takes up-but-broken instances out of rotation.
//
// # Forwarding
//
// Bodyless GET, HEAD and OPTIONS requests without Upgrade or Expect (the
// bulk of web traffic) are forwarded on the handler's goroutine over a
// per-instance pool of HTTP/1.1 keep-alive connections. Every other
// request (bodies, WebSockets and other upgrades, Expect: 100-continue)
// goes through httputil.ReverseProxy with a shared buffer pool and a tuned
// per-instance http.Transport. Both paths set the same headers, enforce
// the same timeouts and report the same codes; the tests run on both.
//
// # Front end
//
// [Router.Serve] does not put net/http's server in front of those common
// requests: its own HTTP/1.1 front end accepts the connections, reads
// request heads with a strict parser and serves keep-alive connections of
// fast-path requests itself, without a goroutine or deadline change per
// request (a request that takes over 100 ms gets a goroutine watching its
// client, so that a client that goes away still cancels it). The first
// request of any other kind (a body, an upgrade, Expect, HTTP/1.0, a
// target not in origin form, an ACME challenge, the HTTP/2 preface) hands
// the connection, with the bytes already read, to a net/http server, which
// serves it from then on. ReadHeaderTimeout, ClientIdleTimeout,
// ClientWriteTimeout, MaxHeaderBytes and MaxConns apply on both;
// [Router.ServeTLS] uses net/http's server alone. Unlike net/http, the
// front end does not sniff a Content-Type for responses that lack one.
//
// As on Heroku, the 55-second window applies towards the client too:
// every write to a client connection (responses, upgraded connections,
// TLS) has its own deadline of Config.ClientWriteTimeout, so a client that
// stops reading is disconnected (H28) and its instance request cancelled,
// while a long download that keeps moving is never cut. net/http's
// absolute Server.WriteTimeout is not used. The last buffered bytes of a
// response (at most 4 KiB) are sent after the request was reported: a
// client that takes none of them is disconnected all the same, with no
// second report.
//
// # Headers
//
// The router stamps X-Request-Start (integer Unix milliseconds, when the
// router read the request) and X-Request-Id (a client value of 20 to 200
// characters from [A-Za-z0-9+/=-] is kept, otherwise a new UUID is made),
// and sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Port. Values
// clients send in those headers are replaced unless the client's address is
// in Config.TrustedProxies, in which case X-Forwarded-For is appended to and
// the client's Proto and Port are kept. Forwarded and X-Forwarded-Host are
// removed.
//
// # Errors
//
// Every error the router itself answers has a stable [Code], a plain HTML
// page, a log line with the request id (Config.Logger) and a report to
// Config.Hook with observe.Request.Code set. The codes follow Heroku's
// router where a Heroku code exists:
//
//	code  status  meaning
//	H10   503     no healthy instance during the whole queue wait (app crashed or unhealthy)
//	H11   503     backlog too deep: the app's queue is full, or the queue wait ran out while instances were busy
//	H12   503     request timeout: no first response byte within Config.FirstByteTimeout
//	H13   503     connection closed without response (reset or EOF before the response headers)
//	H14   503     no web instances: the app has no backends
//	H18   -       response interrupted: the instance failed or stalled for Config.IdleTimeout in the middle of
//	              the response body (status already sent; the client connection is aborted)
//	H19   503     backend connection timeout: every connect attempt timed out
//	H21   503     backend connection refused: every connect attempt was refused
//	H25   413     HTTP restriction: request body over Config.MaxBodyBytes
//	H27   499     client request interrupted: the client went away (nothing is sent)
//	H28   -       client connection idle: a write to the client made no progress for Config.ClientWriteTimeout
//	              (the client stopped reading; status already sent; the connection is closed)
//	H00   404     unknown host: no app is routed at this host (no instance is touched; Slipway's own code)
//	H99   500     router error (a bug)
//
// Two more codes are Slipway's own, for requests the front end refuses
// before routing them; the connection is then closed:
//
//	H01   400     malformed or ambiguous request: bare LF line ends, obs-fold, whitespace before a colon,
//	              an invalid or repeated Host (or none), a malformed or repeated Content-Length,
//	              Transfer-Encoding other than one "chunked" or together with Content-Length
//	H02   431     request headers over Config.MaxHeaderBytes
//
// The front end refuses such requests whatever their method, so a request
// that could be framed two ways never reaches an instance. On connections
// served by net/http (ServeTLS, and a plain connection after its hand-off)
// net/http answers malformed requests itself (400, 431, 501) without
// logging or reporting them; there, a request with both Content-Length and
// Transfer-Encoding: chunked is read as chunked and forwarded without
// Content-Length, as RFC 9112 section 6.3 requires of an intermediary, so
// it cannot smuggle a second request either.
//
// # TLS
//
// With Config.ACME set, [Router.ServeTLS] obtains certificates with ACME
// (golang.org/x/crypto/acme/autocert) for exactly the hosts in the route
// table, stores them in a pluggable autocert.Cache, and serves HTTP/2 and
// HTTP/1.1. [Router.Serve] answers ACME HTTP-01 challenges.
package proxy
