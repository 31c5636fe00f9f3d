package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"testing"
)

// BenchmarkForward compares, on loopback in one process, a GET sent
// directly to an instance, through a stock httputil.ReverseProxy (the
// reference), and through the Router: its front end and fast path, its
// fast path behind net/http's server, and its ReverseProxy path.
// The time per operation includes the client and the instance; scripts/
// bench-router.sh compares against nginx out of process.
func BenchmarkForward(b *testing.B) {
	body := []byte("hello from the benchmark backend\n")
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer inst.Close()
	addr := strings.TrimPrefix(inst.URL, "http://")

	serve := func(h http.Handler) (string, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		return ln.Addr().String(), func() { srv.Close() }
	}
	stock := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", addr; pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConnsPerHost: 256},
	}
	stockAddr, stopStock := serve(stock)
	defer stopStock()

	newRouter := func(noFast, noFrontEnd bool) (string, func()) {
		rt, err := New(Config{Concurrency: 1024})
		if err != nil {
			b.Fatal(err)
		}
		rt.noFastPath = noFast
		rt.noFrontEnd = noFrontEnd
		rt.SetHosts("app", []string{"app.test"})
		setBackends(b, rt, "app", Backend{ID: "web.1", Addr: addr})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go rt.Serve(ln)
		return ln.Addr().String(), func() { rt.Close() }
	}
	fastAddr, stopFast := newRouter(false, false)
	defer stopFast()
	netAddr, stopNet := newRouter(false, true)
	defer stopNet()
	slowAddr, stopSlow := newRouter(true, true)
	defer stopSlow()

	for _, c := range []struct{ name, addr string }{
		{"direct", addr}, {"reverseproxy", stockAddr}, {"router", fastAddr},
		{"router-nethttp-server", netAddr}, {"router-reverseproxy-path", slowAddr},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", "http://"+c.addr+"/", nil)
					req.Host = "app.test"
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}
