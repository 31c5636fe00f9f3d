package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/proxy"
)

func ExampleRouter() {
	// An app instance.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	}))
	defer app.Close()

	rt, err := proxy.New(proxy.Config{})
	if err != nil {
		panic(err)
	}
	defer rt.Close()

	if err := rt.SetHosts("myapp", []string{"myapp.example.com"}); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drain, err := rt.SetBackends(ctx, "myapp", []proxy.Backend{
		{ID: "web.1", Addr: strings.TrimPrefix(app.URL, "http://")},
	})
	if err != nil {
		panic(err)
	}
	_ = drain.Wait(ctx) // nothing was removed

	for _, host := range []string{"myapp.example.com", "other.example.com"} {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+host+"/", nil))
		body, _ := io.ReadAll(rec.Body)
		fmt.Println(rec.Code, rec.Header().Get("X-Router-Error"), strings.SplitN(string(body), "\n", 2)[0])
	}
	// Output:
	// 200  hello from myapp.example.com
	// 404 H00 <!DOCTYPE html>
}

func ExampleRouter_QueueStats() {
	rt, err := proxy.New(proxy.Config{Concurrency: 8})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	_ = rt.SetHosts("myapp", []string{"myapp.example.com"})

	// An autoscaler reads the router's own queue-time measurements.
	q, ok := rt.QueueStats("myapp", 30*time.Second)
	fmt.Println(ok, q.ProcessType, q.Requests, q.P95, q.Instances)
	// Output: true web 0 0s 0
}
