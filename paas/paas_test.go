package paas_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/addons"
	"github.com/slipwayhq/slipway/addons/addontest"
	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildtest"
	"github.com/slipwayhq/slipway/observe"
	"github.com/slipwayhq/slipway/paas"
	"github.com/slipwayhq/slipway/proxy"
	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/release/releasetest"
	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

type env struct {
	t      *testing.T
	p      *paas.Platform
	store  *releasetest.MemStore
	sched  *scaletest.Fake
	router *proxy.Router
	logs   *observe.LogBuffer
	addons map[string]addons.Provisioner
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, store: releasetest.NewMemStore(), logs: observe.NewLogBuffer(observe.LogBufferConfig{})}
	e.sched = scaletest.NewFake(scaletest.FakeConfig{Listen: true, Logs: e.logs})
	e.addons = map[string]addons.Provisioner{"memory": &addontest.Memory{}}
	t.Cleanup(func() { e.sched.Close() })
	e.start()
	return e
}

// start makes a Platform (and router) over the env's store and scheduler, as
// a control plane starting up does.
func (e *env) start() {
	t := e.t
	rt, err := proxy.New(proxy.Config{Hook: paas.RouterLogHook(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	e.router = rt
	p, err := paas.New(paas.Config{
		Store: e.store, Scheduler: e.sched, Builder: &buildtest.Fake{},
		Router: paas.NewProxyRouter(rt), Addons: e.addons, BaseDomain: "example.test", Logs: e.logs,
		Release:      release.ManagerConfig{WatchWindow: -1, Owner: "test"},
		SyncInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	t.Cleanup(func() { p.Close(); rt.Close() })
}

// app writes an app's source: a Dockerfile and a Procfile.
func app(t *testing.T, procfile string) build.Source {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY . /app\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte(procfile), 0o644)
	return build.Source{Dir: dir}
}

// get asks the router for host and returns the status and body.
func (e *env) get(host string) (int, string) {
	req := httptest.NewRequest("GET", "http://"+host+"/", nil)
	w := httptest.NewRecorder()
	e.router.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestDeployReleasePhaseAndRouting(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if err := e.p.CreateApp(c, "shop"); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.get("shop.example.test"); code == http.StatusOK {
		t.Fatal("an app with no release answered 200")
	}
	var out bytes.Buffer
	r1, err := e.p.Deploy(c, "shop", app(t, "release: print 2\nweb: web\n"), paas.DeployOptions{Output: &out})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	if r1.Version != 1 || r1.Status != release.StatusDeployed {
		t.Fatalf("release = %v %s", r1, r1.Status)
	}
	for _, want := range []string{"-----> Building shop", "Running release phase", "line 2", "Released v1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("deploy output lacks %q:\n%s", want, out.String())
		}
	}
	code, body := e.get("shop.example.test")
	if code != http.StatusOK || !strings.Contains(body, "shop") {
		t.Fatalf("GET shop: %d %q", code, body)
	}

	// A failing release phase leaves v1 serving.
	_, err = e.p.Deploy(c, "shop", app(t, "release: exit 3\nweb: web\n"), paas.DeployOptions{})
	var de *release.DeployError
	if !errors.As(err, &de) {
		t.Fatalf("deploy with a failing release phase: %v", err)
	}
	if code, body2 := e.get("shop.example.test"); code != http.StatusOK || body2 != body {
		t.Errorf("after a failed deploy: %d %q, want v1's %q", code, body2, body)
	}

	// A good deploy switches to new instances and stops the old ones.
	r3, err := e.p.Deploy(c, "shop", app(t, "web: web\n# v3\n"), paas.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, body3 := e.get("shop.example.test"); body3 == body {
		t.Errorf("v%d serves from the old instance %q", r3.Version, body3)
	}
	waitFor(t, "v1 instances stopped", func() bool {
		is, _ := e.p.Instances(c, "shop")
		for _, in := range is {
			if in.Release != r3.Version && in.State != scale.StateStopped {
				return false
			}
		}
		return true
	})

	// Roll back to v1: a new release with v1's image serves.
	r4, err := e.p.Rollback(c, "shop", 1, nil)
	if err != nil || r4.RollbackOf != 1 || r4.Image != r1.Image {
		t.Fatalf("rollback: %+v, %v", r4, err)
	}
	rs, err := e.p.Releases(c, "shop", 0)
	if err != nil || len(rs) != 4 {
		t.Fatalf("releases: %d, %v", len(rs), err)
	}
}

func TestConfigScaleRunAndLogs(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.p.CreateApp(c, "blog")
	// Config before the first deploy is kept for it, as on Heroku.
	if _, err := e.p.SetConfig(c, "blog", map[string]string{"GREETING": "hello"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Deploy(c, "blog", app(t, "web: web\nworker: wait\n"), paas.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := e.p.Run(c, "blog", "env GREETING", paas.RunOptions{Stdout: &out})
	if err != nil || res.Exit.Code != 0 || strings.TrimSpace(out.String()) != "GREETING=hello" {
		t.Fatalf("run: %+v %v %q", res, err, out.String())
	}
	if _, err := e.p.SetConfig(c, "blog", map[string]string{"GREETING": "bye"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.p.Config(c, "blog")
	if cfg["GREETING"] != "bye" {
		t.Errorf("config = %v", cfg)
	}

	if err := e.p.Scale(c, "blog", map[string]int{"web": 3, "worker": 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three web instances behind the router", func() bool {
		seen := map[string]bool{}
		for i := 0; i < 60; i++ {
			if code, body := e.get("blog.example.test"); code == 200 {
				seen[body] = true
			}
		}
		return len(seen) == 3
	})
	is, _ := e.p.Instances(c, "blog")
	workers := 0
	for _, in := range is {
		if in.ProcessType == "worker" && in.State == scale.StateUp {
			workers++
		}
	}
	if workers != 2 {
		t.Errorf("%d workers up, want 2", workers)
	}

	var router, appLines int
	e.p.Logs(c, "blog", paas.LogOptions{}, func(l observe.LogLine) error {
		switch l.Source {
		case observe.SourceRouter:
			if strings.Contains(l.Text, "request_id=") && strings.Contains(l.Text, "status=200") {
				router++
			}
		case observe.SourceApp:
			appLines++
		}
		return nil
	})
	if router == 0 || appLines == 0 {
		t.Errorf("logs: %d router lines with request ids, %d app lines", router, appLines)
	}
}

func TestAddons(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.p.CreateApp(c, "api")
	if _, err := e.p.Deploy(c, "api", app(t, "release: exit 0\nweb: web\n"), paas.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.CreateAddon(c, "api", "mysql", paas.AddonOptions{}); !errors.Is(err, paas.ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
	ad, err := e.p.CreateAddon(c, "api", "memory", paas.AddonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.p.Config(c, "api")
	for _, v := range ad.Vars {
		if cfg[v] == "" {
			t.Errorf("config var %s of %s is not set", v, ad.Name)
		}
	}
	rs, _ := e.p.Releases(c, "api", 1)
	if rs[0].Cause != release.CauseAddon || rs[0].Status != release.StatusDeployed {
		t.Errorf("add-on release: %s %s", rs[0].Cause, rs[0].Status)
	}
	if err := e.p.DestroyAddon(c, "api", ad.Name, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ = e.p.Config(c, "api")
	for _, v := range ad.Vars {
		if _, ok := cfg[v]; ok {
			t.Errorf("config var %s stayed after the add-on was destroyed", v)
		}
	}
	if _, err := e.addons["memory"].Resource(c, ad.Resource); !errors.Is(err, addons.ErrNotFound) {
		t.Errorf("resource after destroy: %v", err)
	}
	if err := e.p.DestroyAddon(c, "api", ad.Name, nil); !errors.Is(err, paas.ErrNoAddon) {
		t.Errorf("second destroy: %v", err)
	}
}

func TestDomainsDestroyAndRecover(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.p.CreateApp(c, "site")
	e.p.CreateApp(c, "other")
	if _, err := e.p.Deploy(c, "site", app(t, "web: web\n"), paas.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.AddDomain(c, "site", "www.site.test"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.AddDomain(c, "other", "www.site.test"); !errors.Is(err, paas.ErrDomainTaken) {
		t.Errorf("a domain of another app: %v", err)
	}
	if code, _ := e.get("www.site.test"); code != 200 {
		t.Errorf("custom domain: %d", code)
	}

	// A new control plane over the same store and scheduler routes the app
	// again (domains are in memory here, so only the base domain).
	e.p.Close()
	e.router.Close()
	e.start()
	if _, err := e.p.Recover(c); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.get("site.example.test"); code != 200 {
		t.Errorf("after recover: %d", code)
	}

	if err := e.p.DestroyApp(c, "site"); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.get("site.example.test"); code == 200 {
		t.Error("a destroyed app still answers")
	}
	if _, err := e.p.App(c, "site"); !errors.Is(err, release.ErrAppNotFound) {
		t.Errorf("destroyed app: %v", err)
	}
	is, _ := e.sched.Instances(c, scale.Query{App: "site"})
	for _, in := range is {
		if in.State != scale.StateStopped {
			t.Errorf("instance %s of a destroyed app is %s", in.ID, in.State)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := paas.New(paas.Config{}); !errors.Is(err, paas.ErrInvalidConfig) {
		t.Errorf("empty config: %v", err)
	}
	if _, err := paas.New(paas.Config{Store: releasetest.NewMemStore()}); !errors.Is(err, paas.ErrInvalidConfig) {
		t.Errorf("no scheduler: %v", err)
	}
	cfg := paas.Config{Store: releasetest.NewMemStore(), Scheduler: scaletest.NewFake(scaletest.FakeConfig{}),
		Addons: map[string]addons.Provisioner{"pg": nil}}
	if err := cfg.Validate(); !errors.Is(err, paas.ErrInvalidConfig) {
		t.Errorf("nil provisioner: %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
