package build

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReadFacts reads what detection needs from the source in dir: which marker
// files exist, go.mod's module path, whether the root holds a Go main
// package, package.json's scripts and the Procfile. A Procfile that does not
// parse is returned as a *ProcfileError.
func ReadFacts(dir string) (Facts, error) {
	var f Facts
	has := func(name string) bool { return isFile(filepath.Join(dir, name)) }
	f.Dockerfile = has("Dockerfile")

	if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
		f.GoMod = true
		f.GoModule = goModulePath(data)
		f.GoSum = has("go.sum")
		f.GoVendor = has("vendor/modules.txt")
		f.GoRootMain = goRootMain(dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}

	if data, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil {
		f.PackageJSON = true
		var pj struct {
			Scripts map[string]string `json:"scripts"`
		}
		if err := json.Unmarshal(data, &pj); err != nil {
			return f, fmt.Errorf("package.json: %w", err)
		}
		f.NodeScripts = pj.Scripts
		for _, l := range []string{"package-lock.json", "npm-shrinkwrap.json"} {
			if has(l) {
				f.NodeLockfile = l
				break
			}
		}
		f.NodeServerJS = has("server.js")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}

	f.Requirements = has("requirements.txt")
	f.PyProject = has("pyproject.toml")
	for _, m := range []string{"app.py", "main.py"} {
		if has(m) {
			f.PythonMain = m
			break
		}
	}

	switch {
	case has("index.html"):
		f.StaticRoot = "."
	case has("public/index.html"):
		f.StaticRoot = "public"
	}

	procs, err := readProcfile(dir)
	if err != nil {
		return f, err
	}
	f.Procfile = procs
	return f, nil
}

// goModulePath returns the module path declared in go.mod data.
func goModulePath(data []byte) string {
	for _, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if rest, ok := strings.CutPrefix(s, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			rest = strings.TrimSpace(rest)
			if i := strings.Index(rest, "//"); i >= 0 {
				rest = strings.TrimSpace(rest[:i])
			}
			return strings.Trim(rest, `"`)
		}
	}
	return ""
}

// goRootMain reports whether a non-test .go file in dir says package main.
func goRootMain(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.PackageClauseOnly)
		if err == nil && af.Name.Name == "main" {
			return true
		}
	}
	return false
}
