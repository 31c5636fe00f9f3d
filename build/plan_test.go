package build_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/build"
)

func stepNames(p *build.Plan) []string {
	var s []string
	for _, st := range p.Steps {
		s = append(s, st.Name)
	}
	return s
}

func TestNewPlan(t *testing.T) {
	procfile := []build.Process{{Type: "worker", Command: "bin/worker"}, {Type: "web", Command: "bin/web -p $PORT"}}
	tests := []struct {
		name      string
		facts     build.Facts
		strategy  build.Strategy
		stack     string
		steps     []string
		processes []build.Process
	}{
		{
			name:      "dockerfile wins over everything",
			facts:     build.Facts{Dockerfile: true, GoMod: true, PackageJSON: true, StaticRoot: "."},
			strategy:  build.StrategyDockerfile,
			processes: nil,
		},
		{
			name:      "go module with a root main package",
			facts:     build.Facts{GoMod: true, GoModule: "example.com/acme/api", GoSum: true, GoRootMain: true},
			strategy:  build.StrategyGo,
			stack:     "go",
			steps:     []string{"go mod download", "go build"},
			processes: []build.Process{{Type: "web", Command: "api"}},
		},
		{
			name:      "go major version suffix names the binary after the parent",
			facts:     build.Facts{GoMod: true, GoModule: "example.com/acme/api/v2", GoRootMain: true},
			strategy:  build.StrategyGo,
			stack:     "go",
			steps:     []string{"go mod download", "go build"},
			processes: []build.Process{{Type: "web", Command: "api"}},
		},
		{
			name:      "go vendored: no download step",
			facts:     build.Facts{GoMod: true, GoModule: "x", GoVendor: true, GoRootMain: true},
			strategy:  build.StrategyGo,
			stack:     "go",
			steps:     []string{"go build"},
			processes: []build.Process{{Type: "web", Command: "x"}},
		},
		{
			name:      "procfile overrides defaults, sorted by type",
			facts:     build.Facts{GoMod: true, GoModule: "x", GoRootMain: true, Procfile: procfile},
			strategy:  build.StrategyGo,
			stack:     "go",
			steps:     []string{"go mod download", "go build"},
			processes: []build.Process{{Type: "web", Command: "bin/web -p $PORT"}, {Type: "worker", Command: "bin/worker"}},
		},
		{
			name:      "node with lockfile and start script",
			facts:     build.Facts{PackageJSON: true, NodeLockfile: "package-lock.json", NodeScripts: map[string]string{"start": "node ."}},
			strategy:  build.StrategyNode,
			stack:     "node",
			steps:     []string{"npm ci", "copy source"},
			processes: []build.Process{{Type: "web", Command: "npm start"}},
		},
		{
			name:      "node without lockfile, with build script and server.js",
			facts:     build.Facts{PackageJSON: true, NodeScripts: map[string]string{"build": "tsc"}, NodeServerJS: true},
			strategy:  build.StrategyNode,
			stack:     "node",
			steps:     []string{"npm install", "npm run build"},
			processes: []build.Process{{Type: "web", Command: "npm start"}},
		},
		{
			name:      "python requirements with app.py",
			facts:     build.Facts{Requirements: true, PythonMain: "app.py"},
			strategy:  build.StrategyPython,
			stack:     "python",
			steps:     []string{"pip install", "copy source"},
			processes: []build.Process{{Type: "web", Command: "python app.py"}},
		},
		{
			name:      "python pyproject",
			facts:     build.Facts{PyProject: true, Procfile: []build.Process{{Type: "web", Command: "gunicorn app:app"}}},
			strategy:  build.StrategyPython,
			stack:     "python",
			steps:     []string{"pip install"},
			processes: []build.Process{{Type: "web", Command: "gunicorn app:app"}},
		},
		{
			name:      "static site in public/",
			facts:     build.Facts{StaticRoot: "public"},
			strategy:  build.StrategyStatic,
			stack:     "static",
			processes: []build.Process{{Type: "web", Command: "exec busybox httpd -f -v -p ${PORT:-5000} -h /app/public"}},
		},
		{
			name:      "go beats node and static",
			facts:     build.Facts{GoMod: true, GoModule: "m", GoRootMain: true, PackageJSON: true, StaticRoot: "."},
			strategy:  build.StrategyGo,
			stack:     "go",
			steps:     []string{"go mod download", "go build"},
			processes: []build.Process{{Type: "web", Command: "m"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := build.NewPlan(tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			if p.Strategy != tt.strategy || p.Stack != tt.stack {
				t.Errorf("strategy/stack = %s/%s, want %s/%s", p.Strategy, p.Stack, tt.strategy, tt.stack)
			}
			if got := stepNames(p); !reflect.DeepEqual(got, tt.steps) {
				t.Errorf("steps = %q, want %q", got, tt.steps)
			}
			if !reflect.DeepEqual(p.Processes, tt.processes) {
				t.Errorf("processes = %v, want %v", p.Processes, tt.processes)
			}
			if p.Strategy != build.StrategyDockerfile && !strings.HasPrefix(envOf(p.Env, "PATH"), "") {
				t.Errorf("no PATH")
			}
		})
	}
}

func envOf(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

func TestPlanDetails(t *testing.T) {
	p, err := build.NewPlan(build.Facts{GoMod: true, GoModule: "m", GoSum: true, GoRootMain: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Steps[0].Inputs; !reflect.DeepEqual(got, []string{"go.mod", "go.sum"}) {
		t.Errorf("download inputs = %q: dependency download must depend on go.mod/go.sum only", got)
	}
	if len(p.Steps[1].Inputs) != 0 || len(p.Steps[1].Caches) != 2 {
		t.Errorf("go build step = %+v, want whole source and module+build caches", p.Steps[1])
	}
	if path := envOf(p.Env, "PATH"); !strings.HasPrefix(path, "/app/bin:") {
		t.Errorf("PATH = %q, want /app/bin first", path)
	}
	for _, kv := range p.Env {
		if strings.HasPrefix(kv, "PORT=") {
			t.Errorf("PORT baked into the image: %s", kv)
		}
	}
	n, _ := build.NewPlan(build.Facts{PackageJSON: true, NodeLockfile: "npm-shrinkwrap.json", NodeServerJS: true})
	if got := n.Steps[0].Inputs; !reflect.DeepEqual(got, []string{"package.json", "npm-shrinkwrap.json"}) {
		t.Errorf("npm ci inputs = %q", got)
	}
	if !reflect.DeepEqual(n.Exclude, []string{"node_modules"}) {
		t.Errorf("node excludes = %q, want node_modules", n.Exclude)
	}
}

func TestNewPlanErrors(t *testing.T) {
	_, err := build.NewPlan(build.Facts{})
	if !errors.Is(err, build.ErrNoBuildStrategy) {
		t.Fatalf("empty source: err = %v, want ErrNoBuildStrategy", err)
	}
	for _, want := range []string{"Dockerfile", "go.mod", "package.json", "requirements.txt", "pyproject.toml", "index.html"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// A Go module without a main package at the root and no Procfile.
	_, err = build.NewPlan(build.Facts{GoMod: true, GoModule: "lib"})
	var pe *build.ProcfileError
	if !errors.As(err, &pe) || !errors.Is(err, build.ErrInvalidProcfile) {
		t.Fatalf("err = %v, want *ProcfileError", err)
	}
	// Dockerfile apps may lack a Procfile.
	if _, err := build.NewPlan(build.Facts{Dockerfile: true}); err != nil {
		t.Fatal(err)
	}
}
