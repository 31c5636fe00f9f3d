package observe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

func line(app string, i int) observe.LogLine {
	return observe.LogLine{App: app, Source: observe.SourceApp, Text: fmt.Sprint(i)}
}

func texts(ls []observe.LogLine) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return out
}

func TestLogBufferTailWrapsAround(t *testing.T) {
	b := observe.NewLogBuffer(observe.LogBufferConfig{LinesPerApp: 3})
	for i := 1; i <= 7; i++ {
		b.WriteLog(line("a", i))
	}
	b.WriteLog(line("b", 100))
	if got := fmt.Sprint(texts(b.Tail("a", 0, nil))); got != "[5 6 7]" {
		t.Fatalf("tail all = %s, want [5 6 7]", got)
	}
	if got := fmt.Sprint(texts(b.Tail("a", 2, nil))); got != "[6 7]" {
		t.Fatalf("tail 2 = %s, want [6 7]", got)
	}
	odd := func(l observe.LogLine) bool { return l.Text == "5" || l.Text == "7" }
	if got := fmt.Sprint(texts(b.Tail("a", 0, odd))); got != "[5 7]" {
		t.Fatalf("tail matching = %s, want [5 7]", got)
	}
	if got := len(b.Tail("nobody", 0, nil)); got != 0 {
		t.Fatalf("unknown app has %d lines", got)
	}
	b.Forget("a")
	if got := len(b.Tail("a", 0, nil)); got != 0 {
		t.Fatalf("forgotten app has %d lines", got)
	}
	for i := 8; i <= 12; i++ {
		b.WriteLog(line("a", i))
	}
	if got := fmt.Sprint(texts(b.Tail("a", 0, nil))); got != "[10 11 12]" {
		t.Fatalf("after forget = %s, want [10 11 12]", got)
	}
}

func TestLogBufferFollowManyReaders(t *testing.T) {
	b := observe.NewLogBuffer(observe.LogBufferConfig{LinesPerApp: 10000})
	b.WriteLog(line("a", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const readers, n = 5, 2000
	stop := errors.New("stop")
	var wg, ready sync.WaitGroup
	ready.Add(readers)
	results := make([][]string, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.Follow(ctx, "a", 1, nil, func(l observe.LogLine) error {
				results[r] = append(results[r], l.Text)
				if l.Text == "0" {
					ready.Done()
				}
				if l.Text == fmt.Sprint(n) {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) {
				t.Errorf("reader %d: %v", r, err)
			}
		}()
	}
	ready.Wait()
	for i := 1; i <= n; i++ {
		b.WriteLog(line("a", i))
	}
	wg.Wait()
	for r, got := range results {
		if len(got) != n+1 {
			t.Fatalf("reader %d got %d lines, want %d", r, len(got), n+1)
		}
		for i, s := range got {
			if s != fmt.Sprint(i) {
				t.Fatalf("reader %d: line %d is %q", r, i, s)
			}
		}
	}
}

func TestLogBufferSlowReaderSkipsAndNeverBlocksWriter(t *testing.T) {
	b := observe.NewLogBuffer(observe.LogBufferConfig{LinesPerApp: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gate := make(chan struct{})
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- b.Follow(ctx, "a", 0, nil, func(l observe.LogLine) error {
			<-gate
			got <- l.Text
			return nil
		})
	}()
	b.WriteLog(line("a", 1))
	time.Sleep(20 * time.Millisecond) // let the reader take line 1 and block in fn
	for i := 2; i <= 50; i++ {
		b.WriteLog(line("a", i)) // must not block although the reader is stuck
	}
	close(gate)
	want := []string{"1", "47", "48", "49", "50"}
	for _, w := range want {
		select {
		case s := <-got:
			if s != w {
				t.Fatalf("got line %s, want %s", s, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no line %s", w)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v", err)
	}
}

func ExampleLogBuffer() {
	b := observe.NewLogBuffer(observe.LogBufferConfig{LinesPerApp: 2})
	for _, s := range []string{"booting", "listening on 5000", "GET / 200"} {
		b.WriteLog(observe.LogLine{App: "shop", Source: observe.SourceApp, Text: s})
	}
	for _, l := range b.Tail("shop", 0, nil) {
		fmt.Println(l.Text)
	}
	// Output:
	// listening on 5000
	// GET / 200
}
