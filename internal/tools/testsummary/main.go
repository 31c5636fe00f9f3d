// Command testsummary reads the `go test -json` streams of a test run and
// prints what CI's log must end with: every failed and every skipped test by
// name (with the skip message), then one line "N passed, N failed, N skipped".
//
// Each FILE is one stage of the run (unit, integration); a test that runs
// in several stages is counted in each, so a pass in one never hides a
// failure in another. Lines name the stage by its file name.
//
// Usage: testsummary FILE...
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ stage, pkg, test string }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsummary FILE...")
		os.Exit(2)
	}
	results := map[key]string{}  // last action per test
	output := map[key][]string{} // output lines per test, for skip reasons
	var pkgFail []string         // packages that failed outside any test (build errors)
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		stage := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
		if err := read(f, stage, results, output, &pkgFail); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(2)
		}
		f.Close()
	}
	var passed, failed, skipped []key
	for k, a := range results {
		switch a {
		case "pass":
			passed = append(passed, k)
		case "fail":
			failed = append(failed, k)
		case "skip":
			skipped = append(skipped, k)
		}
	}
	sortKeys(failed)
	sortKeys(skipped)
	fmt.Println("=== Test summary")
	for _, p := range pkgFail {
		fmt.Printf("FAIL (package) %s\n", p)
	}
	for _, k := range failed {
		fmt.Printf("FAIL %s %s %s\n", k.stage, k.pkg, k.test)
	}
	for _, k := range skipped {
		fmt.Printf("SKIP %s %s %s: %s\n", k.stage, k.pkg, k.test, reason(output[k]))
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", len(passed), len(failed)+len(pkgFail), len(skipped))
	if len(failed)+len(pkgFail) > 0 {
		os.Exit(1)
	}
}

func read(r io.Reader, stage string, results map[key]string, output map[key][]string, pkgFail *[]string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // go test prints build errors as plain text
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			continue
		}
		k := key{stage, e.Package, e.Test}
		switch e.Action {
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" && !hasTests(results, stage, e.Package) {
					*pkgFail = append(*pkgFail, stage+" "+e.Package)
				}
				continue
			}
			results[k] = e.Action
		case "output":
			if e.Test != "" && len(output[k]) < 50 {
				output[k] = append(output[k], e.Output)
			}
		}
	}
	return sc.Err()
}

func hasTests(results map[key]string, stage, pkg string) bool {
	for k, a := range results {
		if k.stage == stage && k.pkg == pkg && a == "fail" {
			return true
		}
	}
	return false
}

// reason picks the skip message out of a test's output.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		return l
	}
	return "(no message)"
}

func sortKeys(ks []key) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].stage != ks[j].stage {
			return ks[i].stage < ks[j].stage
		}
		if ks[i].pkg != ks[j].pkg {
			return ks[i].pkg < ks[j].pkg
		}
		return ks[i].test < ks[j].test
	})
}
