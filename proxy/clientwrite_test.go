package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// streamBackend answers with size bytes, written in 32 KiB pieces, and
// sends the number of bytes it managed to write on sent.
func streamBackend(size int, sent chan<- int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		chunk := make([]byte, 32<<10)
		n := 0
		for n < size {
			m, err := w.Write(chunk[:min(len(chunk), size-n)])
			n += m
			if err != nil {
				break
			}
		}
		sent <- n
	}
}

// dialSmallWindow connects to addr with a fixed receive buffer (no
// autotuning up to tens of MiB), so that a client that reads slowly or not
// at all blocks the router's writes within a few MiB.
func dialSmallWindow(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(256 << 10)
	return tc
}

// clientRequests are the requests of the client-write tests: a GET, which
// the front end serves itself, and a POST, which it hands to net/http.
var clientRequests = []string{
	"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n",
	"POST /big HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\n\r\nx",
}

// TestClientWriteTimeout checks that a client that sends a request for a
// large response and never reads is disconnected after ClientWriteTimeout:
// the instance's request is cancelled, the request is reported as H28, its
// slot is released and no goroutine is left.
func TestClientWriteTimeout(t *testing.T) {
	const size = 64 << 20
	tr := startRouter(t, Config{ClientWriteTimeout: 300 * time.Millisecond})
	tr.SetHosts("app", []string{"app.test"})
	sent := make(chan int, 1)
	_, b := startBackend(t, "web.1", streamBackend(size, sent))
	setBackends(t, tr.Router, "app", b)
	base := runtimeGoroutines()
	for i, raw := range clientRequests {
		method, _, _ := strings.Cut(raw, " ")
		c := dialSmallWindow(t, tr.addr)
		defer c.Close()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-sent:
			if n >= size {
				t.Fatalf("%s: the instance wrote the whole response to a client that reads nothing", method)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the instance's request was not cancelled", method)
		}
		o := tr.rec.waitReports(t, i+1)[i]
		if o.Code != string(CodeClientIdle) || o.Method != method || o.Status != http.StatusOK {
			t.Errorf("%s: reported %+v, want H28 after status 200", method, o)
		}
		if q, _ := tr.QueueStats("app", 0); q.InFlight != 0 {
			t.Errorf("%s: %d requests still in flight", method, q.InFlight)
		}
		// The router closed the connection: the client reads what was
		// buffered, then the end, long before the whole response.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the router did not close the connection (%d bytes read)", method, n)
		}
		if n >= size {
			t.Errorf("%s: the client got the whole response", method)
		}
		c.Close()
		checkGoroutines(t, base)
	}
}

// TestClientWriteTimeoutRolls checks that the window is rolling: a client
// that reads slowly but steadily, 2 MiB every 100 ms, gets a 32 MiB
// response whole with a window of 300 ms. (Linux wakes a blocked writer
// once about a third of its send buffer, up to 4 MiB, is free: with 2 MiB
// a pause, a write waits about one pause.)
func TestClientWriteTimeoutRolls(t *testing.T) {
	const (
		size   = 32 << 20
		piece  = 2 << 20
		window = 300 * time.Millisecond
	)
	tr := startRouter(t, Config{ClientWriteTimeout: window})
	tr.SetHosts("app", []string{"app.test"})
	sent := make(chan int, 1)
	_, b := startBackend(t, "web.1", streamBackend(size, sent))
	setBackends(t, tr.Router, "app", b)
	for i, raw := range clientRequests {
		method, _, _ := strings.Cut(raw, " ")
		c := dialSmallWindow(t, tr.addr)
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		buf := make([]byte, piece)
		total := 0
		for {
			n, err := io.ReadFull(res.Body, buf)
			total += n
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("%s: after %d bytes: %v", method, total, err)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		res.Body.Close()
		if total != size {
			t.Errorf("%s: got %d bytes, want %d", method, total, size)
		}
		if n := <-sent; n != size {
			t.Errorf("%s: the instance wrote %d bytes", method, n)
		}
		o := tr.rec.waitReports(t, i+1)[i]
		if o.Code != "" || o.BytesOut != size {
			t.Errorf("%s: reported %+v", method, o)
		}
		// The request is reported after the router's last write: if that
		// came over a window after the first, an absolute deadline would
		// have failed it.
		if o.Code == "" && o.Latency < 2*window {
			t.Errorf("%s: the router wrote everything in %s, too fast to test the window", method, o.Latency)
		}
	}
}

// TestLimitConnWriteDeadline checks the rolling write deadline's interplay
// with deadlines set by the connection's user (net/http clears the write
// deadline after each response, sets one for TLS handshakes).
func TestLimitConnWriteDeadline(t *testing.T) {
	const window = 50 * time.Millisecond
	p1, p2 := net.Pipe() // a write blocks until read: no buffers
	defer p2.Close()
	c := &limitConn{Conn: p1, l: &limitListener{window: window, slack: window / 16}}
	defer p1.Close()
	timesOut := func(what string) {
		t.Helper()
		if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: Write to a peer that reads nothing: %v", what, err)
		}
	}
	timesOut("rolling")
	c.SetWriteDeadline(time.Time{})
	timesOut("after clearing the deadline")
	c.SetDeadline(time.Time{})
	timesOut("after clearing both deadlines")

	// An explicit deadline replaces the rolling one until cleared.
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	go func() {
		time.Sleep(4 * window)
		p2.Read(make([]byte, 1))
	}()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("Write with an explicit deadline a minute away: %v", err)
	}
	c.SetWriteDeadline(time.Time{})
	timesOut("after clearing the explicit deadline")
}
