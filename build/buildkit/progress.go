package buildkit

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/slipwayhq/slipway/build"
)

// tracker follows a build's status stream: it renders progress lines, keeps
// each step's last log lines for StepError, and counts cached steps.
type tracker struct {
	fn func(build.ProgressLine)
	w  io.Writer

	vertices map[digest.Digest]*vertex
	order    []digest.Digest
}

type vertex struct {
	name      string
	started   bool
	completed bool
	cached    bool
	err       string
	partial   map[int]string // unterminated log data per stream
	seq       int            // lines logged so far
	tail      []logLine      // last build.StepLogLines lines of any stream
	errTail   []logLine      // last build.StepLogLines/2 lines of stderr
}

type logLine struct {
	seq  int
	text string
}

// stderrStream is BuildKit's stream number for a step's standard error.
const stderrStream = 2

// stepLog returns the step's last lines for a StepError: the last lines of
// its output, and always the last lines of its standard error. BuildKit
// delivers stdout and stderr as separate streams with no order between
// them, so a step's final error message may arrive before the end of its
// stdout and fall out of a plain tail; it is what a user needs most.
func (v *vertex) stepLog() []string {
	all := append(append([]logLine(nil), v.errTail...), v.tail...)
	slices.SortFunc(all, func(a, b logLine) int { return a.seq - b.seq })
	all = slices.CompactFunc(all, func(a, b logLine) bool { return a.seq == b.seq })
	for len(all) > build.StepLogLines {
		// Drop the oldest line that is not in the stderr tail.
		i := slices.IndexFunc(all, func(l logLine) bool {
			return !slices.ContainsFunc(v.errTail, func(e logLine) bool { return e.seq == l.seq })
		})
		all = slices.Delete(all, i, i+1)
	}
	out := make([]string, len(all))
	for i, l := range all {
		out[i] = l.text
	}
	return out
}

func newTracker(req build.Request) *tracker {
	return &tracker{fn: req.Progress, w: req.ProgressWriter, vertices: map[digest.Digest]*vertex{}}
}

func (t *tracker) emit(l build.ProgressLine) {
	if t.fn != nil {
		t.fn(l)
	}
	if t.w != nil {
		io.WriteString(t.w, l.String()+"\n")
	}
}

func (t *tracker) vertex(d digest.Digest) *vertex {
	v, ok := t.vertices[d]
	if !ok {
		v = &vertex{partial: map[int]string{}}
		t.vertices[d] = v
		t.order = append(t.order, d)
	}
	return v
}

// Message emits a line of the builder's own.
func (t *tracker) message(format string, args ...any) {
	t.emit(build.ProgressLine{Message: fmt.Sprintf(format, args...), Time: time.Now()})
}

func (t *tracker) update(s *client.SolveStatus) {
	for _, sv := range s.Vertexes {
		v := t.vertex(sv.Digest)
		v.name = sv.Name
		now := time.Now()
		if sv.Started != nil && !v.started {
			v.started = true
			now = *sv.Started
		}
		if sv.Cached && !v.cached {
			v.cached = true
			t.emit(build.ProgressLine{Step: v.name, Message: "CACHED", Cached: true, Time: now})
		}
		if sv.Completed != nil && !v.completed {
			v.completed = true
			t.flush(v, *sv.Completed)
			switch {
			case sv.Error != "":
				v.err = sv.Error
				t.emit(build.ProgressLine{Step: v.name, Message: "ERROR: " + sv.Error, Time: *sv.Completed})
			case !v.cached && sv.Started != nil:
				t.emit(build.ProgressLine{Step: v.name, Message: fmt.Sprintf("DONE %.1fs", sv.Completed.Sub(*sv.Started).Seconds()), Time: *sv.Completed})
			}
		}
	}
	for _, l := range s.Logs {
		v := t.vertex(l.Vertex)
		data := v.partial[l.Stream] + string(l.Data)
		lines := strings.Split(data, "\n")
		v.partial[l.Stream] = lines[len(lines)-1]
		for _, line := range lines[:len(lines)-1] {
			t.logLine(v, l.Stream, strings.TrimRight(line, "\r"), l.Timestamp)
		}
	}
}

func (t *tracker) flush(v *vertex, at time.Time) {
	for stream, p := range v.partial {
		if p != "" {
			t.logLine(v, stream, p, at)
		}
		delete(v.partial, stream)
	}
}

func (t *tracker) logLine(v *vertex, stream int, line string, at time.Time) {
	v.seq++
	l := logLine{seq: v.seq, text: line}
	v.tail = keepLast(append(v.tail, l), build.StepLogLines)
	if stream == stderrStream {
		v.errTail = keepLast(append(v.errTail, l), build.StepLogLines/2)
	}
	t.emit(build.ProgressLine{Step: v.name, Message: line, Time: at})
}

func keepLast(ls []logLine, n int) []logLine {
	if len(ls) > n {
		return ls[len(ls)-n:]
	}
	return ls
}

// counts returns how many steps completed and how many of them were cached.
func (t *tracker) counts() (steps, cached int) {
	for _, v := range t.vertices {
		if v.completed || v.cached {
			steps++
			if v.cached {
				cached++
			}
		}
	}
	return steps, cached
}

// failed returns the first step that reported an error other than a
// cancellation, or nil.
func (t *tracker) failed() *vertex {
	for _, d := range t.order {
		v := t.vertices[d]
		if v.err != "" && !strings.Contains(v.err, "context canceled") {
			return v
		}
	}
	return nil
}
