package proxy

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
)

// Code is a router error code, stable across releases (see the package
// documentation for the table).
type Code string

// The router's error codes.
const (
	CodeUnknownHost       Code = "H00" // 404: no app is routed at the host
	CodeBadRequest        Code = "H01" // 400: malformed or ambiguous request
	CodeHeaderTooLarge    Code = "H02" // 431: request headers over MaxHeaderBytes
	CodeNoHealthyInstance Code = "H10" // 503: no healthy instance during the queue wait
	CodeBacklogTooDeep    Code = "H11" // 503: queue full, or queue wait over while instances were busy
	CodeRequestTimeout    Code = "H12" // 503: no first byte within FirstByteTimeout
	CodeConnClosed        Code = "H13" // 503: connection closed without response
	CodeNoInstances       Code = "H14" // 503: the app has no web instances
	CodeInterrupted       Code = "H18" // aborted: instance failed or went idle mid-response
	CodeConnectTimeout    Code = "H19" // 503: connecting to instances timed out
	CodeConnRefused       Code = "H21" // 503: instances refused the connection
	CodeHTTPRestriction   Code = "H25" // 413: request body over MaxBodyBytes
	CodeClientInterrupted Code = "H27" // 499: the client went away
	CodeClientIdle        Code = "H28" // aborted: the client took no response byte for ClientWriteTimeout
	CodeRouterError       Code = "H99" // 500: a router bug
)

// StatusClientClosed is the status reported (never sent) when the client
// went away before a response, as nginx's 499.
const StatusClientClosed = 499

var codeInfo = map[Code]struct {
	status int
	desc   string
}{
	CodeUnknownHost:       {http.StatusNotFound, "No such app"},
	CodeBadRequest:        {http.StatusBadRequest, "Bad request"},
	CodeHeaderTooLarge:    {http.StatusRequestHeaderFieldsTooLarge, "Request headers too large"},
	CodeNoHealthyInstance: {http.StatusServiceUnavailable, "App crashed or has no healthy instance"},
	CodeBacklogTooDeep:    {http.StatusServiceUnavailable, "Backlog too deep"},
	CodeRequestTimeout:    {http.StatusServiceUnavailable, "Request timeout"},
	CodeConnClosed:        {http.StatusServiceUnavailable, "Connection closed without response"},
	CodeNoInstances:       {http.StatusServiceUnavailable, "No web instances running"},
	CodeInterrupted:       {http.StatusServiceUnavailable, "Response interrupted"},
	CodeConnectTimeout:    {http.StatusServiceUnavailable, "Backend connection timeout"},
	CodeConnRefused:       {http.StatusServiceUnavailable, "Backend connection refused"},
	CodeHTTPRestriction:   {http.StatusRequestEntityTooLarge, "Request body too large"},
	CodeClientInterrupted: {StatusClientClosed, "Client request interrupted"},
	CodeClientIdle:        {StatusClientClosed, "Client connection idle"},
	CodeRouterError:       {http.StatusInternalServerError, "Router error"},
}

// Status is the HTTP status the router answers with for c.
func (c Code) Status() int {
	if i, ok := codeInfo[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// Description is a short English description of c.
func (c Code) Description() string { return codeInfo[c].desc }

// precomputed error pages, one per code
var errorPages = func() map[Code][]byte {
	m := make(map[Code][]byte, len(codeInfo))
	for c, i := range codeInfo {
		m[c] = []byte("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.EscapeString(i.desc) +
			"</title></head><body><h1>" + html.EscapeString(i.desc) + "</h1><p>Error code " + string(c) +
			" (HTTP " + strconv.Itoa(i.status) + ").</p></body></html>\n")
	}
	return m
}()

// Sentinel errors of the control API.
var (
	// ErrInvalidHost is wrapped when a host name is not valid.
	ErrInvalidHost = errors.New("proxy: invalid host")
	// ErrHostTaken is wrapped when a host is already routed to another app.
	ErrHostTaken = errors.New("proxy: host is routed to another app")
	// ErrInvalidBackend is wrapped when a backend's id or address is not valid.
	ErrInvalidBackend = errors.New("proxy: invalid backend")
	// ErrUnhealthy is wrapped when a new backend did not pass a health
	// check before the context ended; the route table is then unchanged.
	ErrUnhealthy = errors.New("proxy: backend is not healthy")
	// ErrDrainTimeout is returned by Drain.Wait when removed backends
	// still had requests or connections at Config.DrainTimeout, which
	// the router then closed.
	ErrDrainTimeout = errors.New("proxy: drain timed out; remaining connections were closed")
	// ErrClosed is returned by control calls after Close or Shutdown.
	ErrClosed = errors.New("proxy: router closed")
)

// HealthError says which backends failed their first health check.
type HealthError struct {
	App      string
	Backends []string // ids of the backends that failed
	Err      error    // the last check error
}

func (e *HealthError) Error() string {
	return fmt.Sprintf("proxy: app %s: backends %v did not pass a health check: %v", e.App, e.Backends, e.Err)
}

// Unwrap returns ErrUnhealthy and the check's error.
func (e *HealthError) Unwrap() []error { return []error{ErrUnhealthy, e.Err} }
