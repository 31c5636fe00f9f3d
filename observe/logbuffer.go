package observe

import (
	"context"
	"sync"
)

// DefaultLinesPerApp is how many lines a LogBuffer keeps per app when its
// config says zero.
const DefaultLinesPerApp = 1500

// LogBufferConfig configures a LogBuffer.
type LogBufferConfig struct {
	// LinesPerApp is how many recent lines are kept per app; older lines
	// are dropped. Zero means DefaultLinesPerApp.
	LinesPerApp int
}

// LogBuffer keeps the most recent log lines of each app in a bounded ring
// and lets any number of readers tail and follow them.
//
// Writers never block on readers: a reader that falls more than the ring's
// size behind skips the lines it missed. A LogBuffer is a LogSink and is
// safe for concurrent use. The zero value is not usable; call NewLogBuffer.
type LogBuffer struct {
	size int

	mu   sync.Mutex
	apps map[string]*logRing
}

var _ LogSink = (*LogBuffer)(nil)

// logRing holds one app's lines. next is the sequence number the next line
// written gets; the ring holds the lines numbered next-len(lines)..next-1,
// line n at lines[(n-base)%size], base being the number of its first line.
type logRing struct {
	lines []LogLine
	base  uint64
	next  uint64
	// wake is closed and replaced on every write, so that followers can
	// wait for new lines without a lock.
	wake chan struct{}
}

// NewLogBuffer returns an empty LogBuffer.
func NewLogBuffer(cfg LogBufferConfig) *LogBuffer {
	size := cfg.LinesPerApp
	if size <= 0 {
		size = DefaultLinesPerApp
	}
	return &LogBuffer{size: size, apps: make(map[string]*logRing)}
}

func (b *LogBuffer) ring(app string) *logRing {
	r := b.apps[app]
	if r == nil {
		r = &logRing{wake: make(chan struct{})}
		b.apps[app] = r
	}
	return r
}

// WriteLog appends l to the ring of l.App. It never blocks on readers.
func (b *LogBuffer) WriteLog(l LogLine) {
	b.mu.Lock()
	r := b.ring(l.App)
	if len(r.lines) < b.size {
		r.lines = append(r.lines, l)
	} else {
		r.lines[(r.next-r.base)%uint64(b.size)] = l
	}
	r.next++
	wake := r.wake
	r.wake = make(chan struct{})
	b.mu.Unlock()
	close(wake)
}

// copyFrom returns the lines numbered from seq on that match, the number
// the next unread line will have, and a channel closed on the next write.
// Lines older than the ring are skipped.
func (b *LogBuffer) copyFrom(app string, seq uint64, match func(LogLine) bool) ([]LogLine, uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.ring(app)
	oldest := r.next - uint64(len(r.lines))
	if seq < oldest {
		seq = oldest
	}
	var out []LogLine
	for n := seq; n < r.next; n++ {
		l := r.lines[(n-r.base)%uint64(b.size)]
		if match == nil || match(l) {
			out = append(out, l)
		}
	}
	return out, r.next, r.wake
}

// Tail returns up to n of the app's most recent lines that match (all kept
// lines when n <= 0), oldest first. A nil match matches every line.
func (b *LogBuffer) Tail(app string, n int, match func(LogLine) bool) []LogLine {
	lines, _, _ := b.copyFrom(app, 0, match)
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Follow calls fn with up to tail of the app's recent lines that match
// (all kept lines when tail <= 0), then with every new line that matches,
// until ctx ends or fn returns an error. It returns fn's error, or ctx's.
// fn is called from Follow's goroutine, never with the buffer locked.
func (b *LogBuffer) Follow(ctx context.Context, app string, tail int, match func(LogLine) bool, fn func(LogLine) error) error {
	lines, seq, wake := b.copyFrom(app, 0, match)
	if tail > 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	for {
		for _, l := range lines {
			if err := fn(l); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
		lines, seq, wake = b.copyFrom(app, seq, match)
	}
}

// Forget drops the app's lines. Followers of the app keep waiting for new
// lines.
func (b *LogBuffer) Forget(app string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.apps[app]
	if r == nil {
		return
	}
	// Keep the sequence and wake channel so that followers see only what
	// is written after this call.
	b.apps[app] = &logRing{base: r.next, next: r.next, wake: r.wake}
}
