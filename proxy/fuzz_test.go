package proxy

import (
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
