package proxy

import (
	"errors"
	"net/textproto"
	"net/url"
	"strings"
)

// The front end's request-head parser. It is strict: anything a
// downstream parser could read differently (bare LF, obs-fold, whitespace
// before a colon, repeated or malformed Content-Length, Transfer-Encoding
// together with Content-Length or other than a single "chunked", a missing
// or repeated Host) is refused rather than guessed at, so that no request
// can be smuggled past the router.

// headField is one header line of a request head.
type headField struct {
	name  string // canonical (textproto.CanonicalMIMEHeaderKey)
	value string // without surrounding whitespace
}

// reqHead is a parsed request head. Its strings share one allocation.
type reqHead struct {
	method string
	target string
	minor  int // HTTP/1.minor; 0 or 1
	host   string
	// contentLength is the Content-Length, or -1 without one.
	contentLength int64
	chunked       bool // Transfer-Encoding: chunked
	fields        []headField
}

// headError is a request the front end refuses.
type headError struct {
	status int // 400 or 431
	reason string
}

func (e *headError) Error() string { return "proxy: malformed request: " + e.reason }

func badHead(reason string) *headError { return &headError{status: 400, reason: reason} }

var (
	errHeadTooLarge  = &headError{status: 431, reason: "request headers too large"}
	errNotHTTP11     = errors.New("proxy: not an HTTP/1.x request")
	errBareLF        = badHead("line ending without CR")
	errObsFold       = badHead("obsolete line folding")
	errRequestLine   = badHead("malformed request line")
	errHeaderName    = badHead("malformed header name")
	errHeaderValue   = badHead("invalid character in header value")
	errContentLength = badHead("malformed or repeated Content-Length")
	errTEWithCL      = badHead("Transfer-Encoding together with Content-Length")
	errTERepeated    = badHead("repeated Transfer-Encoding")
	errTEOnHTTP10    = badHead("Transfer-Encoding in an HTTP/1.0 request")
	errTEUnsupported = badHead("unsupported Transfer-Encoding")
	errHostMissing   = badHead("missing Host header")
	errHostRepeated  = badHead("repeated Host header")
	errHostInvalid   = badHead("invalid Host header")
	errTargetInvalid = badHead("invalid request target")
)

// headEnd returns the length of the request head at the start of b
// (through the empty line), or 0 if b holds no complete head yet. It
// refuses bare LF line endings as soon as it sees one, and a head longer
// than max.
func headEnd(b []byte, max int) (int, error) {
	pos := 0
	for {
		i := indexByteFrom(b, pos, '\n')
		if i < 0 {
			if len(b) > max {
				return 0, errHeadTooLarge
			}
			return 0, nil
		}
		if i == pos || b[i-1] != '\r' {
			return 0, errBareLF
		}
		if i+1 > max {
			return 0, errHeadTooLarge
		}
		if i == pos+1 { // "\r\n": the empty line
			if pos == 0 {
				return 0, errRequestLine
			}
			return i + 1, nil
		}
		pos = i + 1
	}
}

func indexByteFrom(b []byte, from int, c byte) int {
	for i := from; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// parseHead parses the complete head s (as delimited by headEnd). It
// returns errNotHTTP11 for a syntactically sound request line of another
// protocol version (e.g. the HTTP/2 preface), which net/http may answer.
func parseHead(s string, h *reqHead) error {
	*h = reqHead{contentLength: -1, fields: h.fields[:0]}
	// Request line: method SP request-target SP HTTP-version CRLF.
	eol := strings.Index(s, "\r\n")
	line := s[:eol]
	rest := s[eol+2:]
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errRequestLine
	}
	h.method = line[:sp1]
	if !isToken(h.method) {
		return errRequestLine
	}
	sp2 := strings.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return errRequestLine
	}
	sp2 += sp1 + 1
	h.target = line[sp1+1 : sp2]
	if !validTarget(h.method, h.target) {
		return errTargetInvalid
	}
	switch proto := line[sp2+1:]; proto {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return errNotHTTP11
		}
		return errRequestLine
	}

	hosts := 0
	tes := 0
	for len(rest) > 2 {
		eol := strings.Index(rest, "\r\n")
		line := rest[:eol]
		rest = rest[eol+2:]
		if line == "" {
			return errHeaderName
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return errHeaderName
		}
		name := line[:colon]
		if !isToken(name) {
			return errHeaderName // includes whitespace before the colon
		}
		value := trimOWS(line[colon+1:])
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
				return errHeaderValue
			}
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		switch name {
		case "Host":
			hosts++
			if hosts > 1 {
				return errHostRepeated
			}
			if !validHostHeader(value) {
				return errHostInvalid
			}
			h.host = value
			continue // like net/http: the host is not among the headers
		case "Content-Length":
			if h.contentLength >= 0 {
				return errContentLength
			}
			n, ok := parseContentLength(value)
			if !ok {
				return errContentLength
			}
			h.contentLength = n
		case "Transfer-Encoding":
			tes++
			if tes > 1 {
				return errTERepeated
			}
			if !strings.EqualFold(value, "chunked") {
				return errTEUnsupported
			}
			h.chunked = true
		}
		h.fields = append(h.fields, headField{name, value})
	}
	if h.chunked {
		if h.contentLength >= 0 {
			return errTEWithCL
		}
		if h.minor == 0 {
			return errTEOnHTTP10
		}
	}
	if hosts == 0 && h.minor == 1 && h.method != "CONNECT" {
		return errHostMissing
	}
	return nil
}

// validTarget reports whether net/http accepts the request target t.
func validTarget(method, t string) bool {
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	if plainTarget(t) {
		return true
	}
	if method == "CONNECT" && !strings.HasPrefix(t, "/") {
		t = "http://" + t // authority-form, as net/http reads it
	}
	_, err := url.ParseRequestURI(t)
	return err == nil
}

// plainTarget reports whether t is an origin-form target that needs no
// unescaping or further validation: then its path is the part before
// '?' as is.
func plainTarget(t string) bool {
	if t == "" || t[0] != '/' {
		return false
	}
	q := false
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '?':
			q = true
		case c == '%' && q:
		default:
			return false
		}
	}
	return true
}

// parseContentLength parses 1*DIGIT without overflow.
func parseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// tokenChars are RFC 9110's tchar.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// hostChars are the bytes net/http accepts in a Host header (as
// golang.org/x/net/http/httpguts.ValidHostHeader).
var hostChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

func validHostHeader(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostChars[s[i]] {
			return false
		}
	}
	return true
}

// The fast path's response-head parser: it takes only the plainest
// response (HTTP/1.1, a final status with a body, exactly one
// Content-Length, no Transfer-Encoding, well-formed lines) and leaves
// every other one to http.ReadResponse, before consuming anything.

// leanResponse describes a response head taken by parseLeanResponse.
type leanResponse struct {
	status        int
	contentLength int64
	close         bool // Connection: close
}

// parseLeanResponse parses the response head at the start of b (which
// must hold all of it) and reports its length, or 0 if the head is not
// complete in b or not plain enough, in which case h is untouched. The
// headers other than hop-by-hop ones are added to h.
func parseLeanResponse(b []byte, h map[string][]string, r *leanResponse) int {
	// Status line: "HTTP/1.1 " 3DIGIT [ " " reason ] CRLF.
	if len(b) < 14 || string(b[:9]) != "HTTP/1.1 " || !isDigit(b[9]) || !isDigit(b[10]) || !isDigit(b[11]) {
		return 0
	}
	status := int(b[9]-'0')*100 + int(b[10]-'0')*10 + int(b[11]-'0')
	if status < 200 || status == 204 || status == 304 || status > 599 {
		return 0
	}
	// First pass: find the end, check every line, count the fields.
	pos := 12
	eol := indexCRLF(b, pos)
	if eol < 0 || eol > pos && (b[pos] != ' ' || !validReason(b[pos+1:eol])) {
		return 0
	}
	pos = eol + 2
	fields := 0
	cl := int64(-1)
	for {
		eol := indexCRLF(b, pos)
		if eol < 0 {
			return 0
		}
		if eol == pos {
			pos += 2
			break
		}
		line := b[pos:eol]
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !tokenChars[c] {
				return 0
			}
		}
		if colon <= 0 {
			return 0
		}
		value := trimOWSBytes(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0
			}
		}
		switch {
		case asciiEqualFold(line[:colon], "Content-Length"):
			n, ok := parseContentLength(string(value))
			if !ok || cl >= 0 {
				return 0
			}
			cl = n
		case asciiEqualFold(line[:colon], "Transfer-Encoding"):
			return 0
		}
		fields++
		pos = eol + 2
	}
	if cl < 0 {
		return 0
	}
	// Second pass: fill h from one string.
	s := string(b[12:pos])
	vals := make([]string, fields)
	i := 0
	p := strings.Index(s, "\r\n") + 2
	*r = leanResponse{status: status, contentLength: cl}
	for {
		eol := strings.Index(s[p:], "\r\n") + p
		if eol == p {
			break
		}
		line := s[p:eol]
		p = eol + 2
		colon := strings.IndexByte(line, ':')
		name := textproto.CanonicalMIMEHeaderKey(line[:colon])
		value := trimOWS(line[colon+1:])
		if name == "Connection" {
			for _, tok := range strings.Split(value, ",") {
				if strings.EqualFold(trimOWS(tok), "close") {
					r.close = true
				}
			}
		}
		if skipResponseHeader[name] {
			continue
		}
		if old, ok := h[name]; ok {
			h[name] = append(old, value)
		} else {
			vals[i] = value
			h[name] = vals[i : i+1 : i+1]
			i++
		}
	}
	return pos
}

func indexCRLF(b []byte, from int) int {
	for i := from; i+1 < len(b); i++ {
		if b[i] == '\n' {
			return -1 // bare LF
		}
		if b[i] == '\r' {
			if b[i+1] != '\n' {
				return -1 // bare CR
			}
			return i
		}
	}
	return -1
}

func validReason(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func trimOWSBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
