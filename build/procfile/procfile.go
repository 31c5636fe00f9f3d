package procfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/slipwayhq/slipway/internal/names"
)

// Well-known process types.
const (
	// Web is the process type that receives HTTP traffic.
	Web = "web"
	// ReleaseType is the process type whose command runs once per release,
	// before the release's processes start (Heroku's release phase).
	ReleaseType = "release"
)

// Limits on what Parse accepts; see the package documentation.
const (
	// MaxSize is the largest Procfile, in bytes, as read and as written
	// back by String.
	MaxSize = 64 << 10
	// MaxLineLength is the longest line, in bytes without its line ending,
	// as read and as written back by String.
	MaxLineLength = 4096
	// MaxProcesses is the most process types a Procfile may declare.
	MaxProcesses = 100
	// MaxErrors is the most errors Parse reports; it stops reading after
	// that many.
	MaxErrors = 10
)

// bom is the UTF-8 byte order mark some editors put at the start of a file.
const bom = "\xef\xbb\xbf"

// Process is one process type of a Procfile.
type Process struct {
	// Type is the process type, a DNS label such as "web" or "worker".
	Type string
	// Command is the command line, to be run with /bin/sh -c. It is not
	// empty and has no surrounding whitespace.
	Command string
	// Line is the 1-based line of the Procfile that declared the process.
	Line int
}

// String returns the process as a Procfile line, "<type>: <command>",
// without a line ending.
func (p Process) String() string { return p.Type + ": " + p.Command }

// Procfile is a parsed Procfile. Its methods treat a nil *Procfile as one
// without processes.
type Procfile struct {
	// Processes are the process types in the order they were declared.
	// Types are unique valid DNS labels and commands are not empty.
	Processes []Process
}

// Parse reads a Procfile from r and parses it. It reads at most MaxSize+1
// bytes. If the Procfile is invalid, Parse returns a nil *Procfile and an
// error joining one *ParseError per bad line (see the package
// documentation). An error reading r is returned wrapped, not as a
// *ParseError.
func Parse(r io.Reader) (*Procfile, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("procfile: read: %w", err)
	}
	return ParseBytes(b)
}

// ParseBytes parses a Procfile held in memory; it is Parse for a byte slice.
func ParseBytes(b []byte) (*Procfile, error) {
	if len(b) > MaxSize {
		line := 1 + bytes.Count(b[:MaxSize], []byte("\n"))
		return nil, errors.Join(&ParseError{Line: line,
			Err: fmt.Errorf("%w: the Procfile is over %d bytes", ErrTooLarge, MaxSize)})
	}
	p := parser{first: make(map[string]int)}
	p.parse(string(b))
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return &Procfile{Processes: p.procs}, nil
}

// parser holds the state of one Parse.
type parser struct {
	procs []Process
	first map[string]int // process type -> line that declared it
	size  int            // bytes of the canonical form so far
	errs  []error
}

// fail records an error on line n and reports whether parsing may go on.
func (p *parser) fail(n int, typ string, err error) bool {
	p.errs = append(p.errs, &ParseError{Line: n, Type: typ, Err: err})
	return len(p.errs) < MaxErrors
}

func (p *parser) parse(s string) {
	s = strings.TrimPrefix(s, bom)
	for n := 1; s != ""; n++ {
		var line string
		line, s, _ = strings.Cut(s, "\n")
		line = strings.TrimSuffix(line, "\r")
		if typ, err := p.line(n, line); err != nil && !p.fail(n, typ, err) {
			return
		}
	}
}

// line parses line n, which has no line ending, and returns what is wrong
// with it, if anything, with the process type it declares if that is known.
func (p *parser) line(n int, raw string) (typ string, err error) {
	if len(raw) > MaxLineLength {
		return "", fmt.Errorf("%w: the line is %d bytes long, at most %d are allowed", ErrTooLarge, len(raw), MaxLineLength)
	}
	if strings.IndexByte(raw, 0) >= 0 {
		return "", fmt.Errorf("%w: it contains a NUL byte", ErrSyntax)
	}
	if strings.IndexByte(raw, '\r') >= 0 {
		return "", fmt.Errorf("%w: it contains a carriage return that does not end the line (old Mac line endings?)", ErrSyntax)
	}
	line := strings.TrimSpace(raw)
	if line == "" || line[0] == '#' || strings.HasPrefix(line, "//") {
		return "", nil
	}
	if !utf8.ValidString(line) {
		return "", fmt.Errorf("%w: it is not valid UTF-8", ErrSyntax)
	}
	typ, cmd, ok := strings.Cut(line, ":")
	if !ok {
		return "", fmt.Errorf("%w: no ':' after the process type (want \"<type>: <command>\")", ErrSyntax)
	}
	if typ == "" {
		return "", fmt.Errorf("%w: no process type before ':' (want \"<type>: <command>\")", ErrSyntax)
	}
	if err := names.Label("process type", typ); err != nil {
		msg := fmt.Sprintf("%q is not a valid process type: %v", typ, err)
		if s := suggest(typ); s != "" {
			msg += fmt.Sprintf("; use %q", s)
		}
		return typ, &detail{msg: msg, errs: []error{ErrInvalidType, err}}
	}
	cmd = strings.TrimSpace(cmd)
	if cmd == "" {
		return typ, fmt.Errorf("%w for process type %q", ErrEmptyCommand, typ)
	}
	if cmd[0] == '#' {
		return typ, fmt.Errorf("%w for process type %q: the command is only a comment", ErrEmptyCommand, typ)
	}
	if at, dup := p.first[typ]; dup {
		return typ, fmt.Errorf("%w %q: first declared on line %d", ErrDuplicate, typ, at)
	}
	// The canonical line, "<type>: <command>", may be one byte longer than
	// the line as written ("web:cmd"); it must fit the limits too, so that
	// what String writes parses again.
	canon := len(typ) + len(": ") + len(cmd)
	if canon > MaxLineLength {
		return typ, fmt.Errorf("%w: the line is %d bytes long as %q, at most %d are allowed", ErrTooLarge, canon, "<type>: <command>", MaxLineLength)
	}
	if len(p.procs) == MaxProcesses {
		return typ, fmt.Errorf("%w: more than %d process types", ErrTooLarge, MaxProcesses)
	}
	if p.size+canon+1 > MaxSize {
		return typ, fmt.Errorf("%w: the Procfile is over %d bytes as written back", ErrTooLarge, MaxSize)
	}
	p.size += canon + 1
	p.first[typ] = n
	p.procs = append(p.procs, Process{Type: typ, Command: cmd, Line: n})
	return typ, nil
}

// Validate reports whether the Procfile follows the rules Parse enforces, so
// that String writes a Procfile that Parse reads back to the same processes.
// A Procfile from Parse is valid; Validate is for one built or changed by
// hand. Its error joins one *ParseError per bad process, whose Line is the
// process's Line field.
func (pf *Procfile) Validate() error {
	if pf == nil {
		return nil
	}
	p := parser{first: make(map[string]int)}
	for _, proc := range pf.Processes {
		if strings.IndexByte(proc.Command, '\n') >= 0 {
			if !p.fail(proc.Line, proc.Type, fmt.Errorf("%w: the command of process type %q contains a line feed", ErrSyntax, proc.Type)) {
				break
			}
			continue
		}
		before := len(p.procs)
		typ, err := p.line(proc.Line, proc.String())
		if err == nil && (len(p.procs) == before || p.procs[before] != proc) {
			typ, err = proc.Type, fmt.Errorf("%w: process type %q does not read back as itself (whitespace around it or its command, or a ':' in it?)", ErrSyntax, proc.Type)
		}
		if err != nil && !p.fail(proc.Line, typ, err) {
			break
		}
	}
	return errors.Join(p.errs...)
}

// suggest returns the DNS label form of a process type that Heroku accepts
// ([A-Za-z0-9_-]+, around whitespace), or "" if there is none.
func suggest(typ string) string {
	typ = strings.TrimSpace(typ)
	b := make([]byte, 0, len(typ))
	for i := 0; i < len(typ); i++ {
		switch c := typ[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c-'A'+'a')
		case c == '_':
			b = append(b, '-')
		default:
			return ""
		}
	}
	s := strings.Trim(string(b), "-")
	if names.Label("process type", s) != nil {
		return ""
	}
	return s
}

// Lookup returns the process of type typ, if the Procfile declares it.
func (pf *Procfile) Lookup(typ string) (Process, bool) {
	if pf == nil {
		return Process{}, false
	}
	for _, p := range pf.Processes {
		if p.Type == typ {
			return p, true
		}
	}
	return Process{}, false
}

// Web returns the web process, if the Procfile declares one.
func (pf *Procfile) Web() (Process, bool) { return pf.Lookup(Web) }

// Release returns the release phase process, if the Procfile declares one.
func (pf *Procfile) Release() (Process, bool) { return pf.Lookup(ReleaseType) }

// Types returns the process types in declaration order.
func (pf *Procfile) Types() []string {
	if pf == nil {
		return nil
	}
	types := make([]string, len(pf.Processes))
	for i, p := range pf.Processes {
		types[i] = p.Type
	}
	return types
}

// String returns the canonical Procfile: one "<type>: <command>" line per
// process, in order, each ending in "\n". Parse reads it back to the same
// types and commands.
func (pf *Procfile) String() string { return string(pf.appendTo(nil)) }

// WriteTo writes the canonical Procfile (see String) to w in one Write.
func (pf *Procfile) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(pf.appendTo(nil))
	return int64(n), err
}

func (pf *Procfile) appendTo(b []byte) []byte {
	if pf == nil {
		return b
	}
	for _, p := range pf.Processes {
		b = append(b, p.Type...)
		b = append(b, ": "...)
		b = append(b, p.Command...)
		b = append(b, '\n')
	}
	return b
}

var _ io.WriterTo = (*Procfile)(nil)
var _ fmt.Stringer = (*Procfile)(nil)
