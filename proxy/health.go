package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// check runs one health check of addr: a TCP connect, then GET
// HealthCheck.Path when set.
func (rt *Router) check(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, rt.cfg.HealthCheck.Timeout)
	defer cancel()
	path := rt.cfg.HealthCheck.Path
	if path == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "slipway-router-health-check")
	res, err := rt.healthClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 399 {
		return fmt.Errorf("health check GET %s: status %d", path, res.StatusCode)
	}
	return nil
}

// waitHealthy retries the health check of each backend until it passes
// once or ctx ends.
func (rt *Router) waitHealthy(ctx context.Context, app string, bs []Backend) error {
	if len(bs) == 0 {
		return nil
	}
	var (
		mu     sync.Mutex
		failed []string
		last   error
		wg     sync.WaitGroup
	)
	for _, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			delay := 50 * time.Millisecond
			for {
				err := rt.check(ctx, b.Addr)
				if err == nil {
					return
				}
				t := time.NewTimer(delay)
				select {
				case <-t.C:
					delay = min(2*delay, time.Second)
					continue
				case <-ctx.Done():
				case <-rt.done:
				}
				t.Stop()
				mu.Lock()
				failed = append(failed, b.ID)
				last = err
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		return &HealthError{App: app, Backends: failed, Err: last}
	}
	return nil
}

func (rt *Router) healthLoop() {
	defer rt.wg.Done()
	t := time.NewTicker(rt.cfg.HealthCheck.Interval)
	defer t.Stop()
	for {
		select {
		case <-rt.done:
			return
		case <-t.C:
			rt.checkAll()
		}
	}
}

// checkAll checks every routed backend once, at most 32 at a time, and
// takes failing ones out of rotation (or puts them back).
func (rt *Router) checkAll() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-rt.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, 32)
	)
	tbl := rt.table.Load()
	for _, r := range tbl.apps {
		for _, b := range r.backends {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				err := rt.check(ctx, b.addr)
				if ctx.Err() != nil {
					return
				}
				b.mu.Lock()
				if err == nil {
					b.failures = 0
				} else {
					b.failures++
				}
				down := b.failures >= rt.cfg.HealthCheck.Failures
				b.mu.Unlock()
				if was := b.unhealthy.Swap(down); was != down {
					if down {
						rt.log.Warn("router: instance unhealthy", "app", b.app.name, "instance", b.id, "addr", b.addr, "err", err)
					} else {
						rt.log.Info("router: instance healthy again", "app", b.app.name, "instance", b.id, "addr", b.addr)
						b.app.queue.wakeAll()
					}
				}
			}()
		}
	}
	wg.Wait()
}
