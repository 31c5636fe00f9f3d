package local

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxLine bounds one log line; longer output is split.
const maxLine = 64 << 10

// tailer reads an instance's stdout or stderr file from where it last
// stopped and hands on its lines. The offset is saved beside the file so
// that a restarted control plane goes on from there.
type tailer struct {
	path    string
	maxSize int64
	emit    func(line string, replay bool)

	mu      sync.Mutex
	f       *os.File
	off     int64
	saved   int64 // offset in the .off file
	savedAt time.Time
	replay  int64 // lines before this offset were handed on by an earlier process
	buf     []byte
}

func newTailer(path string, maxSize int64, emit func(string, bool)) *tailer {
	t := &tailer{path: path, maxSize: maxSize, emit: emit}
	if b, err := os.ReadFile(path + ".off"); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		t.replay, t.saved = n, n
	}
	return t
}

// poll reads what was appended since the last call and emits whole lines;
// with final set it emits a trailing partial line too. It returns whether it
// read anything.
func (t *tailer) poll(final bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			return false
		}
		t.f = f
	}
	if fi, err := t.f.Stat(); err == nil && fi.Size() < t.off {
		// Truncated behind our back: start over.
		t.off, t.buf = 0, nil
	}
	var chunk [32 << 10]byte
	read := false
	for {
		n, err := t.f.ReadAt(chunk[:], t.off)
		if n > 0 {
			read = true
			start := t.off
			t.off += int64(n)
			t.consume(chunk[:n], start)
		}
		if err != nil || n < len(chunk) {
			if err != nil && !errors.Is(err, io.EOF) {
				return read
			}
			break
		}
	}
	if final && len(t.buf) > 0 {
		t.emit(string(t.buf), t.off <= t.replay)
		t.buf = nil
	}
	if len(t.buf) == 0 && t.off >= t.maxSize {
		// Everything read: start the file over.
		if err := os.Truncate(t.path, 0); err == nil {
			t.off, t.replay = 0, 0
		}
	}
	if final || time.Since(t.savedAt) > 500*time.Millisecond {
		t.save()
	}
	return read
}

// save records the offset of the last whole line handed on, so that a
// restarted control plane replays (to its buffer only) what came before.
func (t *tailer) save() {
	if t.off == t.saved || len(t.buf) != 0 {
		return
	}
	if os.WriteFile(t.path+".off", []byte(strconv.FormatInt(t.off, 10)), 0o600) == nil {
		t.saved, t.savedAt = t.off, time.Now()
	}
}

// consume splits b (read at offset start) into lines.
func (t *tailer) consume(b []byte, start int64) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.buf = append(t.buf, b...)
			if len(t.buf) >= maxLine {
				t.emit(string(t.buf), start+int64(len(b)) <= t.replay)
				t.buf = nil
			}
			return
		}
		t.buf = append(t.buf, b[:i]...)
		end := start + int64(i) + 1
		t.emit(string(t.buf), end <= t.replay)
		t.buf = t.buf[:0]
		b = b[i+1:]
		start = end
	}
}

func (t *tailer) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.save()
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// follow polls the tailers until stop is closed, quickly while there is
// output and every 50 ms otherwise.
func follow(stop <-chan struct{}, ts ...*tailer) {
	for {
		read := false
		for _, t := range ts {
			if t.poll(false) {
				read = true
			}
		}
		d := 50 * time.Millisecond
		if read {
			d = 5 * time.Millisecond
		}
		select {
		case <-stop:
			return
		case <-time.After(d):
		}
	}
}
