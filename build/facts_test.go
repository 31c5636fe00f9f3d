package build_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/procfile"
)

const apps = "../examples/apps"

func TestReadFactsSampleApps(t *testing.T) {
	tests := map[string]struct {
		strategy build.Strategy
		procs    []build.Process
	}{
		"go-web":         {build.StrategyGo, []build.Process{{Type: "web", Command: "go-web"}}},
		"node-web":       {build.StrategyNode, []build.Process{{Type: "web", Command: "node server.js"}}},
		"dockerfile-web": {build.StrategyDockerfile, nil},
		"python-web":     {build.StrategyPython, []build.Process{{Type: "web", Command: "python app.py"}}},
		"static-web":     {build.StrategyStatic, []build.Process{{Type: "web", Command: "exec busybox httpd -f -v -p ${PORT:-5000} -h /app/public"}}},
	}
	for app, tt := range tests {
		t.Run(app, func(t *testing.T) {
			f, err := build.ReadFacts(filepath.Join(apps, app))
			if err != nil {
				t.Fatal(err)
			}
			p, err := build.NewPlan(f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Strategy != tt.strategy {
				t.Errorf("strategy = %s, want %s", p.Strategy, tt.strategy)
			}
			if !reflect.DeepEqual(p.Processes, tt.procs) {
				t.Errorf("processes = %v, want %v", p.Processes, tt.procs)
			}
		})
	}
}

func TestReadFactsGo(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "go.mod", "// comment\nmodule \"example.com/x/y\" // trailing\n\ngo 1.22\n")
	write(t, dir, "lib.go", "package y\n")
	write(t, dir, "main_test.go", "package main\n")
	f, err := build.ReadFacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.GoModule != "example.com/x/y" || f.GoRootMain || f.GoSum {
		t.Fatalf("facts = %+v", f)
	}
	write(t, dir, "cmd.go", "// Command y.\npackage main\n")
	if f, _ = build.ReadFacts(dir); !f.GoRootMain {
		t.Fatal("root main package not detected")
	}
}

func TestReadFactsBadProcfile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "index.html", "hi")
	write(t, dir, "Procfile", "web: ok\nBad Type: x\n")
	_, err := build.ReadFacts(dir)
	var pe *build.ProcfileError
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Fatalf("err = %v, want *ProcfileError at line 2", err)
	}
	if !errors.Is(err, build.ErrInvalidProcfile) || !errors.Is(err, procfile.ErrInvalidType) {
		t.Errorf("err = %v does not wrap ErrInvalidProcfile and the parser's error", err)
	}
	write(t, dir, "Procfile", "# only a comment\n")
	if _, err := build.ReadFacts(dir); !errors.Is(err, build.ErrInvalidProcfile) {
		t.Errorf("empty Procfile: err = %v", err)
	}
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
