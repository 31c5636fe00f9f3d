package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/postgres"
	"github.com/slipwayhq/slipway/addons/redis"
	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildkit"
	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/paas"
	"github.com/slipwayhq/slipway/paas/gitpush"
	"github.com/slipwayhq/slipway/proxy"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/bolt"
	"github.com/slipwayhq/slipway/scale/local"
)

type serverFlags struct {
	state        string
	api          string
	router       string
	domain       string
	buildkitAddr string
	buildkitd    string
	stacks       string
	postgresURL  string
	redisURL     string
	runc         string
	healthPath   string
	watch        time.Duration
}

func serverMain(args []string) error {
	var f serverFlags
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&f.state, "state", stateDir(), "state directory (releases, images, instances, token)")
	fs.StringVar(&f.api, "api", "127.0.0.1:7070", "control API and git address")
	fs.StringVar(&f.router, "router", "127.0.0.1:8080", "router address apps are served on")
	fs.StringVar(&f.domain, "domain", "localhost", "apps are served at <app>.<domain>")
	fs.StringVar(&f.buildkitAddr, "buildkit-addr", "", "buildkitd address; empty starts and supervises one")
	fs.StringVar(&f.buildkitd, "buildkitd", envOr("SLIPWAY_BUILDKITD", "buildkitd"), "buildkitd binary to supervise")
	fs.StringVar(&f.stacks, "stacks", os.Getenv("SLIPWAY_STACKS"), "directory of stack OCI layouts (scripts/stacks.sh)")
	fs.StringVar(&f.postgresURL, "postgres", os.Getenv("SLIPWAY_POSTGRES_URL"), "PostgreSQL superuser URL for the postgres add-on; empty offers none")
	fs.StringVar(&f.redisURL, "redis", os.Getenv("SLIPWAY_REDIS_URL"), "Redis admin URL for the redis add-on; empty offers none")
	fs.StringVar(&f.runc, "runc", envOr("SLIPWAY_RUNC", ""), "runc binary; empty means /usr/sbin/runc")
	fs.StringVar(&f.healthPath, "health-path", "", "HTTP path new web instances must answer before traffic switches")
	fs.DurationVar(&f.watch, "watch", 10*time.Second, "how long new instances are watched after a switch (unhealthy: automatic rollback); negative: off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("minipaas server runs containers with runc and needs root")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, f)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// serve wires the platform from the embedded defaults and serves it until
// ctx ends.
func serve(ctx context.Context, f serverFlags) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := os.MkdirAll(f.state, 0o700); err != nil {
		return err
	}
	token, err := loadToken(f.state)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	// Bind both ports first: a second server on the same state fails here,
	// before it touches anything.
	apiLn, err := net.Listen("tcp", f.api)
	if err != nil {
		return err
	}
	defer apiLn.Close()
	routerLn, err := net.Listen("tcp", f.router)
	if err != nil {
		return err
	}
	defer routerLn.Close()

	// BuildKit: the given daemon, or one of our own.
	bkAddr := f.buildkitAddr
	bkCtx, stopBK := context.WithCancel(context.Background())
	defer stopBK()
	if bkAddr == "" {
		bk := &buildkitd{bin: f.buildkitd, root: filepath.Join(f.state, "buildkitd"), log: log.With("part", "buildkitd")}
		done, err := bk.run(bkCtx)
		if err != nil {
			return err
		}
		defer func() { stopBK(); <-done }()
		bkAddr = bk.addr()
	}
	images := filepath.Join(f.state, "images")
	builder, err := buildkit.New(ctx, buildkit.Config{
		Addr: bkAddr, Output: images, Stacks: build.LocalStacks(f.stacks), Logger: log.With("part", "build"),
	})
	if err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	defer builder.Close()

	store, err := bolt.Open(filepath.Join(f.state, "releases.db"), bolt.Options{})
	if err != nil {
		return fmt.Errorf("release store: %w", err)
	}
	defer store.Close()

	logs := observe.NewLogBuffer(observe.LogBufferConfig{})
	sched, err := local.New(local.Config{
		StateDir: filepath.Join(f.state, "scheduler"), Images: images, Runc: f.runc,
		Logs: logs, Logger: log.With("part", "scheduler"),
	})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	defer sched.Close()

	rt, err := proxy.New(proxy.Config{Hook: paas.RouterLogHook(logs), Logger: log.With("part", "router")})
	if err != nil {
		return err
	}
	defer rt.Close()

	provs, closeAddons, err := addonProvisioners(ctx, f, log)
	if err != nil {
		return err
	}
	defer closeAddons()

	p, err := paas.New(paas.Config{
		Store: store, Scheduler: sched, Builder: builder,
		Router: paas.NewProxyRouter(rt), Addons: provs,
		Domains:    &fileDomains{path: filepath.Join(f.state, "domains.json")},
		BaseDomain: f.domain, Logs: logs,
		Release: release.ManagerConfig{
			Owner:  "minipaas@" + f.state,
			Health: release.HealthCheck{Path: f.healthPath},
			// 10 s catches instances that crash at once. The push returns
			// once the new release serves, as on Heroku: the watch goes
			// on in the background (an automatic rollback then shows in
			// `releases`), and the app's next change ends it.
			WatchWindow:       f.watch,
			WatchInBackground: true,
		},
		Logger: log.With("part", "platform"),
	})
	if err != nil {
		return err
	}
	defer p.Close()
	rep, err := p.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, a := range rep.Apps {
		log.Info("recovered an interrupted deploy", "app", a.App, "release", a.Release, "step", a.Step, "outcome", a.Final.Outcome, "err", a.Err)
	}

	git := &gitpush.Server{
		Root:         filepath.Join(f.state, "git"),
		MaxPushBytes: 256 << 20,
		Authorize:    func(r *http.Request) error { return checkToken(r, token) },
		AppExists: func(ctx context.Context, app string) error {
			if _, err := p.App(ctx, app); errors.Is(err, release.ErrAppNotFound) {
				return fmt.Errorf("%w: %v", gitpush.ErrUnknownApp, err)
			} else if err != nil {
				return err
			}
			return nil
		},
		Deploy: func(ctx context.Context, push *gitpush.Push) error { return deployPush(ctx, p, push) },
		Logger: log.With("part", "git"),
	}
	shutdown := make(chan struct{}, 1)
	apiSrv := &http.Server{
		Handler:           newAPI(p, token, git, shutdown),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- apiSrv.Serve(apiLn) }()
	go func() { errc <- rt.Serve(routerLn) }()
	ep := endpoint{API: "http://" + apiLn.Addr().String(), Router: routerLn.Addr().String(), Domain: f.domain, PID: os.Getpid()}
	if err := writeEndpoint(f.state, ep); err != nil {
		return err
	}
	log.Info("minipaas is up", "api", ep.API, "router", ep.Router, "apps", "http://<app>."+f.domain+":"+portOf(ep.Router))

	select {
	case <-ctx.Done():
	case <-shutdown:
	case err := <-errc:
		log.Error("server stopped", "err", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apiSrv.Shutdown(sctx)
	rt.Shutdown(sctx)
	os.Remove(filepath.Join(f.state, "endpoint.json"))
	return nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// addonProvisioners connects the add-on adapters whose services were given.
func addonProvisioners(ctx context.Context, f serverFlags, log *slog.Logger) (map[string]addons.Provisioner, func(), error) {
	provs := map[string]addons.Provisioner{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if f.postgresURL != "" {
		pool, err := pgxpool.New(ctx, f.postgresURL)
		if err != nil {
			return nil, closeAll, fmt.Errorf("postgres add-on: %w", err)
		}
		closers = append(closers, pool.Close)
		pg, err := postgres.New(ctx, postgres.Config{Admin: pool, Logger: log.With("part", "addons/postgres")})
		if err != nil {
			closeAll()
			return nil, func() {}, fmt.Errorf("postgres add-on: %w", err)
		}
		provs["postgres"] = pg
	}
	if f.redisURL != "" {
		opt, err := goredis.ParseURL(f.redisURL)
		if err != nil {
			closeAll()
			return nil, func() {}, fmt.Errorf("redis add-on: bad URL")
		}
		client := goredis.NewClient(opt)
		closers = append(closers, func() { client.Close() })
		rd, err := redis.New(redis.Config{Admin: client, Logger: log.With("part", "addons/redis")})
		if err != nil {
			closeAll()
			return nil, func() {}, fmt.Errorf("redis add-on: %w", err)
		}
		provs["redis"] = rd
	}
	return provs, closeAll, nil
}

// deployPush builds and deploys what was pushed, writing progress into the
// push's output.
func deployPush(ctx context.Context, p *paas.Platform, push *gitpush.Push) error {
	src, err := push.Archive(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = p.Deploy(ctx, push.App, build.Source{Tar: src}, paas.DeployOptions{
		Output:      push.Output,
		Description: "Deploy " + push.New[:7],
	})
	return err
}
