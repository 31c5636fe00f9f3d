package build

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalidRequest is wrapped when a Request fails validation.
	ErrInvalidRequest = errors.New("invalid build request")

	// ErrNoBuildStrategy is wrapped when the source has nothing a build
	// strategy recognises; the message names what was looked for.
	ErrNoBuildStrategy = errors.New("no build strategy: found no Dockerfile, go.mod, package.json, requirements.txt, pyproject.toml or index.html (also looked in public/)")

	// ErrUnsafeSource is wrapped when the source holds a symlink that is
	// absolute or escapes the source, a device file, a fifo or socket, or
	// (in a tar stream) a path that leaves the source.
	ErrUnsafeSource = errors.New("unsafe source")

	// ErrSourceTooLarge is wrapped when the source, after .dockerignore or
	// .slugignore, is larger than the builder's limit.
	ErrSourceTooLarge = errors.New("source too large")

	// ErrInvalidProcfile is wrapped (by *ProcfileError) when the Procfile
	// cannot be parsed, or when an app that needs one has none.
	ErrInvalidProcfile = errors.New("invalid Procfile")

	// ErrStepFailed is wrapped by *StepError.
	ErrStepFailed = errors.New("build step failed")
)

// StepLogLines is how many trailing log lines a StepError keeps.
const StepLogLines = 20

// StepError reports a build step that failed.
type StepError struct {
	// Step names the failing step as the progress output does.
	Step string
	// Log holds the step's last lines of output (at most StepLogLines).
	Log []string
	// Err is the engine's error.
	Err error
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "build step %q failed", e.Step)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Log) > 0 {
		b.WriteString("\n")
		b.WriteString(strings.Join(e.Log, "\n"))
	}
	return b.String()
}

// Unwrap returns ErrStepFailed and the engine's error.
func (e *StepError) Unwrap() []error { return []error{ErrStepFailed, e.Err} }

// ProcfileError reports a Procfile that cannot be used.
type ProcfileError struct {
	// Line is the 1-based line of the problem, 0 if it is not about one line.
	Line int
	// Err is the parser's error (or a description of what is missing).
	Err error
}

func (e *ProcfileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("invalid Procfile: line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("invalid Procfile: %v", e.Err)
}

// Unwrap returns ErrInvalidProcfile and the parser's error.
func (e *ProcfileError) Unwrap() []error { return []error{ErrInvalidProcfile, e.Err} }
