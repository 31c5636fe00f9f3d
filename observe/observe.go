package observe

import "time"

// Request is what the router reports for every request it handles.
//
// The router passes a pointer to a value it reuses: a hook must copy what it
// keeps and must not retain the pointer after ObserveRequest returns.
type Request struct {
	Start       time.Time     // when the router read the request headers
	RequestID   string        // the X-Request-Id the router forwarded
	Host        string        // the Host the client asked for
	App         string        // the routed app; empty when no route matched
	ProcessType string        // the routed process type, usually "web"
	Instance    string        // the instance that served it; empty when none did
	Method      string        // the request method
	Path        string        // the request path, without the query
	Status      int           // the status sent to the client
	Code        string        // the router's error code (e.g. "H12"); empty on success
	QueueTime   time.Duration // time spent waiting in the router for a free instance slot
	Latency     time.Duration // time from Start to the last byte of the response
	BytesIn     int64         // request body bytes read from the client
	BytesOut    int64         // response body bytes written to the client
}

// RequestHook receives one call per request handled by the router. It is
// called on the request path, so it must be fast and must not block; it may
// be called from many goroutines at once.
type RequestHook interface {
	ObserveRequest(r *Request)
}

// RequestHookFunc adapts a function to a RequestHook.
type RequestHookFunc func(r *Request)

// ObserveRequest calls f(r).
func (f RequestHookFunc) ObserveRequest(r *Request) { f(r) }

// Log sources name who wrote a log line, as in Heroku's `app[web.1]` and
// `heroku[router]`.
const (
	SourceApp      = "app"      // an instance's stdout or stderr
	SourceRouter   = "router"   // the router's access and error lines
	SourceRelease  = "release"  // the release phase and deploy steps
	SourcePlatform = "platform" // scheduler and control-plane notices
)

// LogLine is one line of output, from an instance or from the platform.
type LogLine struct {
	Time        time.Time
	App         string
	Source      string // one of the Source constants
	ProcessType string // for SourceApp: the process type
	Instance    string // for SourceApp: the instance id
	Stream      string // for SourceApp: "stdout" or "stderr"
	Text        string // the line, without its trailing newline
}

// LogSink receives log lines. Implementations must be safe for concurrent use
// and must not block for long: a slow sink slows down whoever writes.
type LogSink interface {
	WriteLog(l LogLine)
}

// LogSinkFunc adapts a function to a LogSink.
type LogSinkFunc func(l LogLine)

// WriteLog calls f(l).
func (f LogSinkFunc) WriteLog(l LogLine) { f(l) }

// EventKind names what happened to an app.
type EventKind string

// Events reported by the platform's parts.
const (
	EventBuildStarted    EventKind = "build.started"
	EventBuildFinished   EventKind = "build.finished"
	EventReleaseCreated  EventKind = "release.created"
	EventReleasePhase    EventKind = "release.phase"
	EventDeployStarted   EventKind = "deploy.started"
	EventDeploySucceeded EventKind = "deploy.succeeded"
	EventDeployFailed    EventKind = "deploy.failed"
	EventRollback        EventKind = "deploy.rollback"
	EventInstanceStarted EventKind = "instance.started"
	EventInstanceCrashed EventKind = "instance.crashed"
	EventInstanceOOM     EventKind = "instance.oom"
	EventInstanceStopped EventKind = "instance.stopped"
)

// Event is one thing that happened to an app. Message never holds secrets.
type Event struct {
	Time     time.Time
	App      string
	Kind     EventKind
	Release  int    // the release version concerned; 0 when none
	Instance string // the instance concerned; empty when none
	Message  string
}

// EventSink receives events. Implementations must be safe for concurrent use.
type EventSink interface {
	Event(e Event)
}

// EventSinkFunc adapts a function to an EventSink.
type EventSinkFunc func(e Event)

// Event calls f(e).
func (f EventSinkFunc) Event(e Event) { f(e) }
