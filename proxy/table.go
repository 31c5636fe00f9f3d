package proxy

import (
	"fmt"
	"strings"
)

// WebProcessType is the process type the router sends requests to.
const WebProcessType = "web"

// Backend is one instance of an app that takes requests.
type Backend struct {
	// ID names the instance (e.g. "web.1" or a scheduler's instance id);
	// it is reported as observe.Request.Instance. Unique within an app.
	ID string
	// Addr is the instance's host:port, reachable over plain HTTP/1.1.
	Addr string
	// Concurrency overrides Config.Concurrency for this instance when
	// positive.
	Concurrency int
}

// route is one app in one version of the route table. Immutable once
// published; the *appState and *backend values it points to are shared
// across versions and hold the mutable parts.
type route struct {
	app      *appState
	hosts    []string
	backends []*backend
}

// table is one immutable version of the route table.
type table struct {
	exact map[string]*route // lower-case host -> route
	wild  map[string]*route // lower-case parent of "*.parent" -> route
	apps  map[string]*route // app name -> route
}

var emptyTable = &table{exact: map[string]*route{}, wild: map[string]*route{}, apps: map[string]*route{}}

// lookup finds the route of a normalized host.
func (t *table) lookup(host string) *route {
	if r := t.exact[host]; r != nil {
		return r
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		return t.wild[host[i+1:]]
	}
	return nil
}

// normalizeHost strips the port and a trailing dot of a Host header and
// lower-cases it, without allocating when it already is lower case.
func normalizeHost(h string) string {
	if len(h) > 0 && h[0] == '[' { // IPv6 literal
		if i := strings.IndexByte(h, ']'); i > 0 {
			return strings.ToLower(h[1:i])
		}
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// validHost checks a host as given to SetHosts and returns its normalized
// form: a DNS name of labels of letters, digits, '-' and '_', optionally
// starting with the wildcard label "*".
func validHost(h string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(h), ".")
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%w: %q must be 1 to 253 characters long", ErrInvalidHost, h)
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("%w: %q has an empty or too long label", ErrInvalidHost, h)
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: %q has %q; only letters, digits, '-', '_' and a leading \"*.\" are allowed", ErrInvalidHost, h, rune(c))
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: label %q of %q starts or ends with '-'", ErrInvalidHost, l, h)
		}
	}
	return n, nil
}

// build makes a new table from a map of app routes.
func build(apps map[string]*route) *table {
	t := &table{
		exact: make(map[string]*route),
		wild:  make(map[string]*route),
		apps:  apps,
	}
	for _, r := range apps {
		for _, h := range r.hosts {
			if p, ok := strings.CutPrefix(h, "*."); ok {
				t.wild[p] = r
			} else {
				t.exact[h] = r
			}
		}
	}
	return t
}
