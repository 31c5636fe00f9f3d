package build

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Strategy is how an app is built.
type Strategy string

// The build strategies, in the order they are tried: a Dockerfile wins, as
// on Dokku; then the languages.
const (
	StrategyDockerfile Strategy = "dockerfile"
	StrategyGo         Strategy = "go"
	StrategyNode       Strategy = "node"
	StrategyPython     Strategy = "python"
	StrategyStatic     Strategy = "static"
)

// Facts are what detection learned about a source. ReadFacts reads them
// from a directory; NewPlan turns them into a Plan without further I/O.
type Facts struct {
	Dockerfile bool // a file named Dockerfile at the root

	GoMod      bool   // go.mod
	GoModule   string // the module path in go.mod
	GoSum      bool   // go.sum
	GoVendor   bool   // vendor/modules.txt
	GoRootMain bool   // the root directory holds a main package

	PackageJSON  bool              // package.json
	NodeLockfile string            // package-lock.json or npm-shrinkwrap.json, if any
	NodeScripts  map[string]string // package.json "scripts"
	NodeServerJS bool              // server.js (npm start's default)

	Requirements bool   // requirements.txt
	PyProject    bool   // pyproject.toml
	PythonMain   string // app.py or main.py, if any

	StaticRoot string // "." (index.html at the root) or "public", if any

	// Procfile holds the Procfile's process types; nil when there is none.
	Procfile []Process
}

// Plan is how to build an app: steps run in the build image of a Stack
// with the source in /app, then /app (with what the steps made) is copied
// onto the run image.
type Plan struct {
	Strategy Strategy
	// Stack names the Stack (Stacks key) the plan runs on; empty for
	// Dockerfile plans.
	Stack string
	// Steps run in order in the build image. A plan with no steps copies
	// the source straight onto the run image.
	Steps []Step
	// BuildEnv is set for every step (KEY=value).
	BuildEnv []string
	// Env is added to the run image's environment (KEY=value); PATH is
	// included and puts /app/bin first.
	Env []string
	// Exclude are source patterns never copied into /app (e.g.
	// node_modules, which the install step makes).
	Exclude []string
	// Processes are the process types: the Procfile's, else the
	// language's defaults. Sorted by type. For Dockerfile plans without a
	// Procfile it is empty and the builder takes `web` from the image.
	Processes []Process
}

// Step is one build step.
type Step struct {
	// Name is shown in progress output and StepError.
	Name string
	// Inputs are the source files copied into /app before the step runs,
	// so that the step's cache survives changes to other files. Empty means
	// the whole source.
	Inputs []string
	// Run is a /bin/sh -c command run in /app.
	Run string
	// Caches are directories mounted from the app's persistent build cache.
	Caches []Cache
}

// Cache is a build-cache directory that persists across builds of one cache
// scope (see Request.CacheScope).
type Cache struct {
	// Name identifies the cache within a scope, e.g. "go-mod".
	Name string
	// Path is where it is mounted in the build image.
	Path string
}

// DefaultPath is PATH in images built from a detected language, before the
// language's own directories.
const DefaultPath = "/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const cacheRoot = "/var/cache/slipway"

// NewPlan chooses a strategy for the source described by f and plans it.
// It wraps ErrNoBuildStrategy when nothing is recognised and returns a
// *ProcfileError when no web process can be found for a language that has
// no default.
func NewPlan(f Facts) (*Plan, error) {
	var p *Plan
	switch {
	case f.Dockerfile:
		p = &Plan{Strategy: StrategyDockerfile}
	case f.GoMod:
		p = goPlan(f)
	case f.PackageJSON:
		p = nodePlan(f)
	case f.Requirements || f.PyProject:
		p = pythonPlan(f)
	case f.StaticRoot != "":
		p = staticPlan(f)
	default:
		return nil, ErrNoBuildStrategy
	}
	if f.Procfile != nil {
		p.Processes = append([]Process(nil), f.Procfile...)
		sort.Slice(p.Processes, func(i, j int) bool { return p.Processes[i].Type < p.Processes[j].Type })
	}
	if p.Strategy != StrategyDockerfile && len(p.Processes) == 0 {
		return nil, &ProcfileError{Err: fmt.Errorf("no Procfile, and the %s build has no default web process", p.Strategy)}
	}
	return p, nil
}

// goBinaryName is the name `go build` gives the main package of module.
func goBinaryName(module string) string {
	base := path.Base(module)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" && path.Dir(module) != "." {
		base = path.Base(path.Dir(module))
	}
	return base
}

func goPlan(f Facts) *Plan {
	caches := []Cache{{Name: "go-mod", Path: cacheRoot + "/go-mod"}, {Name: "go-build", Path: cacheRoot + "/go-build"}}
	p := &Plan{
		Strategy: StrategyGo,
		Stack:    "go",
		BuildEnv: []string{
			"CGO_ENABLED=0",
			"GOTOOLCHAIN=local",
			"GOFLAGS=-buildvcs=false",
			"GOPATH=/tmp/go",
			"GOMODCACHE=" + cacheRoot + "/go-mod",
			"GOCACHE=" + cacheRoot + "/go-build",
		},
		Env: []string{"PATH=" + DefaultPath},
	}
	if !f.GoVendor {
		inputs := []string{"go.mod"}
		if f.GoSum {
			inputs = append(inputs, "go.sum")
		}
		p.Steps = append(p.Steps, Step{Name: "go mod download", Inputs: inputs, Run: "go mod download", Caches: caches[:1]})
	}
	p.Steps = append(p.Steps, Step{Name: "go build", Run: "go build -trimpath -ldflags=-s -o /app/bin/ ./...", Caches: caches})
	if f.GoRootMain && f.GoModule != "" {
		p.Processes = []Process{{Type: "web", Command: goBinaryName(f.GoModule)}}
	}
	return p
}

func nodePlan(f Facts) *Plan {
	cache := []Cache{{Name: "npm", Path: cacheRoot + "/npm"}}
	p := &Plan{
		Strategy: StrategyNode,
		Stack:    "node",
		BuildEnv: []string{
			"npm_config_cache=" + cacheRoot + "/npm",
			"npm_config_update_notifier=false",
			"npm_config_fund=false",
			"npm_config_audit=false",
		},
		Env:     []string{"PATH=/app/node_modules/.bin:" + DefaultPath, "NODE_ENV=production"},
		Exclude: []string{"node_modules"},
	}
	if f.NodeLockfile != "" {
		p.Steps = append(p.Steps, Step{Name: "npm ci", Inputs: []string{"package.json", f.NodeLockfile}, Run: "npm ci", Caches: cache})
	} else {
		p.Steps = append(p.Steps, Step{Name: "npm install", Inputs: []string{"package.json"}, Run: "npm install", Caches: cache})
	}
	if f.NodeScripts["build"] != "" {
		p.Steps = append(p.Steps, Step{Name: "npm run build", Run: "npm run build", Caches: cache})
	} else {
		// The whole source must be in /app before it is copied on.
		p.Steps = append(p.Steps, Step{Name: "copy source", Run: "true"})
	}
	if f.NodeScripts["start"] != "" || f.NodeServerJS {
		p.Processes = []Process{{Type: "web", Command: "npm start"}}
	}
	return p
}

func pythonPlan(f Facts) *Plan {
	cache := []Cache{{Name: "pip", Path: cacheRoot + "/pip"}}
	p := &Plan{
		Strategy: StrategyPython,
		Stack:    "python",
		BuildEnv: []string{
			"PIP_CACHE_DIR=" + cacheRoot + "/pip",
			"PIP_DISABLE_PIP_VERSION_CHECK=1",
			"PYTHONDONTWRITEBYTECODE=1",
		},
		Env:     []string{"PATH=/app/.venv/bin:" + DefaultPath, "VIRTUAL_ENV=/app/.venv", "PYTHONUNBUFFERED=1"},
		Exclude: []string{".venv"},
	}
	if f.Requirements {
		p.Steps = append(p.Steps,
			Step{Name: "pip install", Inputs: []string{"requirements.txt"}, Run: "python3 -m venv /app/.venv && /app/.venv/bin/pip install -r requirements.txt", Caches: cache},
			Step{Name: "copy source", Run: "true"})
	} else {
		p.Steps = append(p.Steps, Step{Name: "pip install", Run: "python3 -m venv /app/.venv && /app/.venv/bin/pip install .", Caches: cache})
	}
	if f.PythonMain != "" {
		p.Processes = []Process{{Type: "web", Command: "python " + f.PythonMain}}
	}
	return p
}

func staticPlan(f Facts) *Plan {
	root := "/app"
	if f.StaticRoot != "." {
		root = "/app/" + f.StaticRoot
	}
	return &Plan{
		Strategy:  StrategyStatic,
		Stack:     "static",
		Env:       []string{"PATH=" + DefaultPath},
		Processes: []Process{{Type: "web", Command: "exec busybox httpd -f -v -p ${PORT:-5000} -h " + root}},
	}
}

// Prepare does what every Builder does before it builds: it validates req,
// makes its source ready (see PrepareSource), detects the language and
// plans the build. On success the caller must Close the returned source; on
// failure it is already cleaned up.
func Prepare(ctx context.Context, req Request, opts SourceOptions) (*PreparedSource, *Plan, error) {
	if err := req.Validate(); err != nil {
		return nil, nil, err
	}
	src, err := PrepareSource(ctx, req.Source, opts)
	if err != nil {
		return nil, nil, err
	}
	facts, err := ReadFacts(src.Dir)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	plan, err := NewPlan(facts)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	return src, plan, nil
}
