package procfile

import (
	"errors"
	"strconv"
)

// Sentinel errors wrapped by every *ParseError, for errors.Is.
var (
	// ErrSyntax: a line is not `<type>: <command>` (no ':', nothing before
	// it), contains a NUL byte or a bare carriage return, or a process line
	// is not valid UTF-8.
	ErrSyntax = errors.New("malformed line")
	// ErrInvalidType: a process type is not a DNS label. The error also
	// wraps the names.ErrInvalid that explains why.
	ErrInvalidType = errors.New("invalid process type")
	// ErrEmptyCommand: a process type has no command, or only a comment.
	ErrEmptyCommand = errors.New("empty command")
	// ErrDuplicate: a process type is declared more than once.
	ErrDuplicate = errors.New("duplicate process type")
	// ErrTooLarge: the input is over MaxSize, a line over MaxLineLength, or
	// there are more than MaxProcesses process types.
	ErrTooLarge = errors.New("too large")
)

// ParseError describes one problem on one line of a Procfile.
type ParseError struct {
	// Line is the 1-based number of the offending line. For an error from
	// Procfile.Validate it is the Line field of the offending Process.
	Line int
	// Type is the process type declared on the line, or "" if the line has
	// none (or it could not be read).
	Type string
	// Err says what is wrong. It wraps one of ErrSyntax, ErrInvalidType,
	// ErrEmptyCommand, ErrDuplicate or ErrTooLarge, and sometimes a cause
	// (names.ErrInvalid for ErrInvalidType).
	Err error
}

// Error returns "procfile: line N: " followed by Err's message.
func (e *ParseError) Error() string {
	return "procfile: line " + strconv.Itoa(e.Line) + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ParseError) Unwrap() error { return e.Err }

// detail is an error with its own message that wraps several errors (a
// sentinel and, optionally, its cause) without repeating their text.
type detail struct {
	msg  string
	errs []error
}

func (d *detail) Error() string   { return d.msg }
func (d *detail) Unwrap() []error { return d.errs }
