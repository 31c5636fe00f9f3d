package paas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/proxy"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/scale"
)

// Router is what a Platform needs of the router in front of web instances.
// NewProxyRouter adapts Slipway's own; any other router (an nginx or Envoy
// controller, a cloud load balancer) fits by implementing these three
// methods.
type Router interface {
	// SetHosts routes exactly hosts to app, replacing its previous hosts.
	SetHosts(app string, hosts []string) error
	// SetBackends makes backends the app's web instances, atomically: a
	// request sees the old set or the new one. It may health-check new
	// backends first, and returns once requests in flight to the removed
	// ones have finished, or ctx ends.
	SetBackends(ctx context.Context, app string, backends []release.Backend) error
	// RemoveApp stops routing to app and waits for its requests in flight,
	// or for ctx to end.
	RemoveApp(ctx context.Context, app string) error
}

// NewProxyRouter adapts a *proxy.Router to Router.
func NewProxyRouter(rt *proxy.Router) Router { return proxyRouter{rt} }

type proxyRouter struct{ rt *proxy.Router }

var _ Router = proxyRouter{}

func (p proxyRouter) SetHosts(app string, hosts []string) error { return p.rt.SetHosts(app, hosts) }

func (p proxyRouter) SetBackends(ctx context.Context, app string, bs []release.Backend) error {
	pbs := make([]proxy.Backend, len(bs))
	for i, b := range bs {
		pbs[i] = proxy.Backend{ID: b.ID, Addr: b.Addr}
	}
	d, err := p.rt.SetBackends(ctx, app, pbs)
	if err != nil {
		return err
	}
	return drained(d.Wait(ctx))
}

func (p proxyRouter) RemoveApp(ctx context.Context, app string) error {
	return drained(p.rt.RemoveApp(app).Wait(ctx))
}

// drained treats a drain the router ended at its timeout (closing the
// connections left, such as WebSockets) as done: nothing reaches the old
// instances any more.
func drained(err error) error {
	if errors.Is(err, proxy.ErrDrainTimeout) {
		return nil
	}
	return err
}

// traffic is the release.Traffic the Manager switches through, and the loop
// that keeps the routed release's backends in step with the scheduler.
type traffic struct {
	router Router
	sched  scale.Scheduler
	log    *slog.Logger

	mu     sync.Mutex
	routed map[string]*routeState
}

var _ release.Traffic = (*traffic)(nil)

// routeState is what the router holds for one app. Its mutex serializes
// the Manager's switches with the sync loop, so the loop never routes a
// release the Manager has just switched away from.
type routeState struct {
	mu       sync.Mutex
	release  int
	backends []release.Backend // sorted by ID, as release.Route's
}

func (t *traffic) state(app string) *routeState {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.routed[app]
	if st == nil {
		st = &routeState{}
		t.routed[app] = st
	}
	return st
}

func (t *traffic) forget(app string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.routed, app)
}

// SetRoute implements release.Traffic.
func (t *traffic) SetRoute(ctx context.Context, r release.Route) error {
	st := t.state(r.App)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := t.router.SetBackends(ctx, r.App, r.Backends); err != nil {
		return err
	}
	st.release, st.backends = r.Release, slices.Clone(r.Backends)
	return nil
}

// adopt routes the app's release as it runs now, after a restart.
func (t *traffic) adopt(ctx context.Context, app string, version int) {
	st := t.state(app)
	st.mu.Lock()
	st.release = version
	st.mu.Unlock()
	t.sync(ctx, app, st)
}

func (t *traffic) loop(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		apps := make(map[string]*routeState, len(t.routed))
		for app, st := range t.routed {
			apps[app] = st
		}
		t.mu.Unlock()
		for app, st := range apps {
			t.sync(ctx, app, st)
		}
	}
}

// syncTimeout bounds one sync of one app: health checks of new instances
// and the drain of removed (dead) ones.
const syncTimeout = 5 * time.Second

// sync routes the healthy web instances of the app's routed release, when
// they differ from what the router has. While none is healthy it leaves the
// router as it is: the router's own checks and quarantine keep requests off
// dead instances, and a restart on the same address comes back by itself.
func (t *traffic) sync(ctx context.Context, app string, st *routeState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.release == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	is, err := t.sched.Instances(ctx, scale.Query{App: app, Release: st.release, ProcessType: "web"})
	if err != nil {
		t.log.Warn("paas: route sync: list instances", "app", app, "err", err)
		return
	}
	bs := release.WebRoute(app, st.release, is).Backends
	if len(bs) == 0 || slices.Equal(bs, st.backends) {
		return
	}
	if err := t.router.SetBackends(ctx, app, bs); err != nil {
		t.log.Warn("paas: route sync", "app", app, "err", err)
		return
	}
	st.backends = bs
}

// RouterLogHook returns a hook for the router that writes one Heroku-style
// router line per request into sink, under the request's app:
//
//	at=info method=GET path="/" host=a.example request_id=... dyno=web.1 queue=0ms service=3ms status=200 bytes=12
//
// Requests for no app (unknown hosts) are not written: they belong to no
// app's stream.
func RouterLogHook(sink observe.LogSink) observe.RequestHook {
	return observe.RequestHookFunc(func(r *observe.Request) {
		if r.App == "" {
			return
		}
		at := "info"
		code := ""
		if r.Code != "" {
			at, code = "error", " code="+r.Code
		}
		sink.WriteLog(observe.LogLine{
			Time: r.Start.Add(r.Latency), App: r.App, Source: observe.SourceRouter,
			Text: fmt.Sprintf("at=%s%s method=%s path=%q host=%s request_id=%s dyno=%s queue=%dms service=%dms status=%d bytes=%d",
				at, code, r.Method, r.Path, r.Host, r.RequestID, r.Instance,
				r.QueueTime.Milliseconds(), (r.Latency - r.QueueTime).Milliseconds(), r.Status, r.BytesOut),
		})
	})
}
