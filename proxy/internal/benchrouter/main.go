// Command benchrouter runs Slipway's router in front of one backend, for
// scripts/bench-router.sh. It stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/slipwayhq/slipway/proxy"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	backend := flag.String("backend", "", "backend host:port")
	host := flag.String("host", "bench.test", "routed host")
	concurrency := flag.Int("concurrency", 4096, "per-instance concurrency limit")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *backend == "" {
		log.Fatal("-backend is required")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	rt, err := proxy.New(proxy.Config{Concurrency: *concurrency, QueueLength: 65536})
	if err != nil {
		log.Fatal(err)
	}
	if err := rt.SetHosts("bench", []string{*host}); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rt.SetBackends(ctx, "bench", []proxy.Backend{{ID: "web.1", Addr: *backend}}); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- rt.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-errc:
		log.Print(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := rt.Shutdown(sctx); err != nil && err != http.ErrServerClosed {
		log.Print(err)
	}
}
