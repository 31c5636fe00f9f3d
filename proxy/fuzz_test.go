package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzHosts checks the host rules: a host SetHosts accepts is its own
// normal form, and a request Host, however odd, is matched without panics
// and only against hosts that are equal to it or a one-label wildcard.
func FuzzHosts(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "A.B.c:80", "[::1]:8080", "x..y", "*.", ".", "", "é.com", "a_b.test."} {
		f.Add(s, "x.example.com")
	}
	f.Fuzz(func(t *testing.T, host, reqHost string) {
		n, err := validHost(host)
		if err != nil {
			return
		}
		if n != strings.ToLower(n) || strings.HasSuffix(n, ".") {
			t.Fatalf("validHost(%q) = %q, not normal", host, n)
		}
		if !strings.HasPrefix(n, "*.") && normalizeHost(n) != n {
			t.Fatalf("normalizeHost(%q) = %q", n, normalizeHost(n))
		}
		r := &route{app: &appState{name: "a"}, hosts: []string{n}}
		tbl := build(map[string]*route{"a": r})
		got := tbl.lookup(normalizeHost(reqHost))
		if got == nil {
			return
		}
		h := normalizeHost(reqHost)
		if p, ok := strings.CutPrefix(n, "*."); ok {
			i := strings.IndexByte(h, '.')
			if i <= 0 || h[i+1:] != p {
				t.Fatalf("%q matched wildcard %q", reqHost, n)
			}
		} else if h != n {
			t.Fatalf("%q matched %q", reqHost, n)
		}
	})
}

// FuzzParseRequest checks the front end's request parser: it never panics,
// and every head it accepts net/http reads the same way (same method,
// target, host, Content-Length and header values), so the router and the
// net/http server it hands connections to cannot disagree about where a
// request ends.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("GET /a?b HTTP/1.1\r\nHost: a.test:80\r\nX-A: 1\r\nx-a:  2 \r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n"))
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	for _, c := range smuggling {
		f.Add([]byte(c.head))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 12
		n, err := headEnd(data, max)
		if err != nil || n == 0 {
			return
		}
		if n > len(data) || n > max || !bytes.HasSuffix(data[:n], []byte("\r\n\r\n")) {
			t.Fatalf("headEnd = %d for %q", n, data)
		}
		var h reqHead
		if err := parseHead(string(data[:n]), &h); err != nil {
			var he *headError
			if err != errNotHTTP11 && !errors.As(err, &he) {
				t.Fatalf("parseHead: unexpected error type %T", err)
			}
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:n])))
		if err != nil {
			t.Fatalf("accepted %q, net/http refuses it: %v", data[:n], err)
		}
		if req.Method != h.method || req.RequestURI != h.target || req.ProtoMinor != h.minor || req.Host != h.host {
			t.Fatalf("%q: net/http reads %s %s 1.%d host %q; we read %s %s 1.%d host %q",
				data[:n], req.Method, req.RequestURI, req.ProtoMinor, req.Host, h.method, h.target, h.minor, h.host)
		}
		wantCL := h.contentLength
		if h.chunked {
			wantCL = -1
		} else if wantCL < 0 {
			wantCL = 0
		}
		if req.ContentLength != wantCL {
			t.Fatalf("%q: net/http reads Content-Length %d; we read %d", data[:n], req.ContentLength, wantCL)
		}
		got := http.Header{}
		for _, fl := range h.fields {
			got[fl.name] = append(got[fl.name], fl.value)
		}
		for k, v := range req.Header {
			if k == "Content-Length" || k == "Transfer-Encoding" {
				continue // net/http may drop or normalize these
			}
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Fatalf("%q: header %s: net/http reads %q; we read %q", data[:n], k, v, got[k])
			}
		}
	})
}

// FuzzParseLeanResponse checks the fast path's response parser: every
// response head it takes, http.ReadResponse reads the same way (status,
// length, headers, connection reuse, where the body starts), so a pooled
// connection to an instance cannot fall out of step.
func FuzzParseLeanResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := http.Header{}
		var r leanResponse
		n := parseLeanResponse(data, h, &r)
		if n == 0 {
			if len(h) != 0 {
				t.Fatalf("%q: refused but headers were set", data)
			}
			return
		}
		req := &http.Request{Method: "GET"}
		res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), req)
		if err != nil {
			t.Fatalf("took %q, net/http refuses it: %v", data[:n], err)
		}
		if res.StatusCode != r.status || res.ContentLength != r.contentLength || res.Close != r.close {
			t.Fatalf("%q: net/http reads %d len %d close %v; we read %d len %d close %v",
				data[:n], res.StatusCode, res.ContentLength, res.Close, r.status, r.contentLength, r.close)
		}
		want := http.Header{}
		copyHeader(want, res.Header)
		if fmt.Sprint(want) != fmt.Sprint(h) {
			t.Fatalf("%q: net/http reads headers %q; we read %q", data[:n], want, h)
		}
		body, _ := io.ReadAll(res.Body)
		rest := data[n:]
		if int64(len(rest)) > r.contentLength {
			rest = rest[:r.contentLength]
		}
		if !bytes.Equal(body, rest) {
			t.Fatalf("%q: net/http reads body %q; we would read %q", data, body, rest)
		}
	})
}
