package procfile_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/slipwayhq/slipway/build/procfile"
	"github.com/slipwayhq/slipway/internal/names"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// sentinels names the errors a *ParseError may wrap, for golden files.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrSyntax", procfile.ErrSyntax},
	{"ErrInvalidType", procfile.ErrInvalidType},
	{"ErrEmptyCommand", procfile.ErrEmptyCommand},
	{"ErrDuplicate", procfile.ErrDuplicate},
	{"ErrTooLarge", procfile.ErrTooLarge},
	{"names.ErrInvalid", names.ErrInvalid},
}

// parseErrors returns the *ParseErrors joined in err, failing the test if
// err holds anything else.
func parseErrors(t testing.TB, err error) []*procfile.ParseError {
	t.Helper()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not a join of *ParseError: %v", err, err)
	}
	var pes []*procfile.ParseError
	for _, e := range joined.Unwrap() {
		pe, ok := e.(*procfile.ParseError)
		if !ok {
			t.Fatalf("joined error %T is not a *ParseError: %v", e, e)
		}
		pes = append(pes, pe)
	}
	return pes
}

// render formats the result of Parse for a golden file.
func render(t *testing.T, pf *procfile.Procfile, err error) string {
	var b strings.Builder
	if err != nil {
		pes := parseErrors(t, err)
		fmt.Fprintf(&b, "errors: %d\n", len(pes))
		for _, pe := range pes {
			var is []string
			for _, s := range sentinels {
				if errors.Is(pe, s.err) {
					is = append(is, s.name)
				}
			}
			fmt.Fprintf(&b, "line %d type %q is %s\n  %s\n", pe.Line, pe.Type, strings.Join(is, ", "), pe.Error())
		}
		return b.String()
	}
	fmt.Fprintf(&b, "processes: %d\n", len(pf.Processes))
	for _, p := range pf.Processes {
		fmt.Fprintf(&b, "line %d type %q command %q\n", p.Line, p.Type, p.Command)
	}
	web, ok := pf.Web()
	fmt.Fprintf(&b, "web: %v %q\n", ok, web.Command)
	rel, ok := pf.Release()
	fmt.Fprintf(&b, "release: %v %q\n", ok, rel.Command)
	fmt.Fprintf(&b, "canonical:\n%s", pf)
	return b.String()
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.procfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.procfile")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".procfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := procfile.Parse(bytes.NewReader(src))
			checkResult(t, src, pf, err)
			got := render(t, pf, err)
			golden := strings.TrimSuffix(in, ".procfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// checkResult checks the invariants every result of Parse(src) holds; the
// golden tests and FuzzParse share it.
func checkResult(t testing.TB, src []byte, pf *procfile.Procfile, err error) {
	t.Helper()
	pf2, err2 := procfile.ParseBytes(src)
	if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
		t.Fatalf("Parse and ParseBytes disagree: %v vs %v", err, err2)
	}
	if err != nil {
		if pf != nil {
			t.Fatalf("Parse returned %v and a non-nil Procfile", err)
		}
		pes := parseErrors(t, err)
		if len(pes) == 0 || len(pes) > procfile.MaxErrors {
			t.Fatalf("Parse returned %d errors, want 1 to %d", len(pes), procfile.MaxErrors)
		}
		last := 0
		for _, pe := range pes {
			if pe.Line < 1 || pe.Line <= last {
				t.Fatalf("error lines not increasing from 1: %d after %d", pe.Line, last)
			}
			last = pe.Line
			n := 0
			for _, s := range sentinels[:5] {
				if errors.Is(pe, s.err) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%v wraps %d of the package's sentinels, want 1", pe, n)
			}
			if !strings.HasPrefix(pe.Error(), fmt.Sprintf("procfile: line %d: ", pe.Line)) {
				t.Fatalf("%q does not start with its line", pe.Error())
			}
		}
		var pe *procfile.ParseError
		if !errors.As(err, &pe) || pe != pes[0] {
			t.Fatalf("errors.As does not find the first *ParseError")
		}
		return
	}
	if pf2.String() != pf.String() {
		t.Fatalf("Parse and ParseBytes disagree:\n%s\nvs\n%s", pf, pf2)
	}
	if len(pf.Processes) > procfile.MaxProcesses {
		t.Fatalf("%d processes, more than %d", len(pf.Processes), procfile.MaxProcesses)
	}
	seen := make(map[string]bool)
	last := 0
	for _, p := range pf.Processes {
		if err := names.Label("process type", p.Type); err != nil {
			t.Fatalf("type %q: %v", p.Type, err)
		}
		if seen[p.Type] {
			t.Fatalf("duplicate type %q", p.Type)
		}
		seen[p.Type] = true
		if p.Command == "" || strings.TrimSpace(p.Command) != p.Command || strings.ContainsAny(p.Command, "\r\n\x00") {
			t.Fatalf("type %q: bad command %q", p.Type, p.Command)
		}
		if p.Line <= last {
			t.Fatalf("type %q: line %d after %d", p.Type, p.Line, last)
		}
		last = p.Line
		if got, ok := pf.Lookup(p.Type); !ok || got != p {
			t.Fatalf("Lookup(%q) = %v, %v", p.Type, got, ok)
		}
	}
	if err := pf.Validate(); err != nil {
		t.Fatalf("Validate of a parsed Procfile: %v", err)
	}
	canon := pf.String()
	if len(canon) > procfile.MaxSize {
		t.Fatalf("canonical form is %d bytes, over MaxSize", len(canon))
	}
	var buf bytes.Buffer
	if n, err := pf.WriteTo(&buf); err != nil || n != int64(len(canon)) || buf.String() != canon {
		t.Fatalf("WriteTo = %d, %v, wrote %q; String = %q", n, err, buf.String(), canon)
	}
	again, err := procfile.Parse(strings.NewReader(canon))
	if err != nil {
		t.Fatalf("canonical form does not parse: %v\n%s", err, canon)
	}
	if len(again.Processes) != len(pf.Processes) {
		t.Fatalf("canonical form has %d processes, want %d", len(again.Processes), len(pf.Processes))
	}
	for i, p := range again.Processes {
		want := pf.Processes[i]
		if p.Type != want.Type || p.Command != want.Command || p.Line != i+1 {
			t.Fatalf("canonical form process %d = %+v, want %+v on line %d", i, p, want, i+1)
		}
	}
	if again.String() != canon {
		t.Fatalf("canonical form is not stable:\n%s\nvs\n%s", again, canon)
	}
}

func TestErrorsIsAs(t *testing.T) {
	_, err := procfile.ParseBytes([]byte("web: a\nWeb_1: b\nweb: c\n"))
	if !errors.Is(err, procfile.ErrInvalidType) || !errors.Is(err, names.ErrInvalid) || !errors.Is(err, procfile.ErrDuplicate) {
		t.Fatalf("errors.Is misses a sentinel in %v", err)
	}
	if errors.Is(err, procfile.ErrSyntax) {
		t.Fatalf("errors.Is(%v, ErrSyntax) = true", err)
	}
	var pe *procfile.ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || pe.Type != "Web_1" {
		t.Fatalf("errors.As = %+v", pe)
	}
	want := `procfile: line 2: "Web_1" is not a valid process type: `
	if !strings.HasPrefix(pe.Error(), want) || !strings.HasSuffix(pe.Error(), `; use "web-1"`) {
		t.Fatalf("error = %q, want %q...; use \"web-1\"", pe.Error(), want)
	}
}

func TestSuggestions(t *testing.T) {
	for typ, want := range map[string]string{
		"Web_1":                 `; use "web-1"`,
		"Worker":                `; use "worker"`,
		"URGENT_worker":         `; use "urgent-worker"`,
		"_web_":                 `; use "web"`,
		"web ":                  `; use "web"`,
		"web server":            "",
		"_":                     "",
		"w.eb":                  "",
		strings.Repeat("A", 64): "",
	} {
		_, err := procfile.ParseBytes([]byte(typ + ": cmd\n"))
		var pe *procfile.ParseError
		if !errors.As(err, &pe) || !errors.Is(err, procfile.ErrInvalidType) {
			t.Fatalf("%q: error %v, want ErrInvalidType", typ, err)
		}
		if got := pe.Error(); want == "" && strings.Contains(got, "; use ") || want != "" && !strings.HasSuffix(got, want) {
			t.Errorf("%q: error %q, want suffix %q", typ, got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	line := func(n int) string { return "web: " + strings.Repeat("x", n-len("web: ")) + "\n" }
	if _, err := procfile.ParseBytes([]byte(line(procfile.MaxLineLength))); err != nil {
		t.Errorf("line of MaxLineLength: %v", err)
	}
	if _, err := procfile.ParseBytes([]byte(line(procfile.MaxLineLength + 1))); !errors.Is(err, procfile.ErrTooLarge) {
		t.Errorf("line of MaxLineLength+1: %v, want ErrTooLarge", err)
	}

	// Exactly MaxSize bytes parse; one more byte does not, from a reader
	// or from memory, and the error names the line the limit falls on.
	comment := "#" + strings.Repeat("-", 1022) + "\n" // 1 KiB
	exact := strings.Repeat(comment, procfile.MaxSize/len(comment)-1) + line(len(comment)-1)
	if len(exact) != procfile.MaxSize {
		t.Fatalf("test input is %d bytes", len(exact))
	}
	pf, err := procfile.Parse(strings.NewReader(exact))
	if err != nil || len(pf.Processes) != 1 || pf.Processes[0].Line != 64 {
		t.Fatalf("MaxSize input: %v, %v", pf, err)
	}
	for name, parse := range map[string]func(string) (*procfile.Procfile, error){
		"Parse":      func(s string) (*procfile.Procfile, error) { return procfile.Parse(strings.NewReader(s)) },
		"ParseBytes": func(s string) (*procfile.Procfile, error) { return procfile.ParseBytes([]byte(s)) },
	} {
		_, err := parse(exact + "\n")
		var pe *procfile.ParseError
		if !errors.Is(err, procfile.ErrTooLarge) || !errors.As(err, &pe) || pe.Line != 65 {
			t.Errorf("%s of MaxSize+1 bytes: %v, want ErrTooLarge on line 65", name, err)
		}
	}

	// The canonical form may be longer than the input ("a:b" is written
	// back as "a: b"); it must stay within MaxSize too.
	// 100 lines "pNN:yyy..." of 655 bytes and a comment make MaxSize bytes;
	// written back with ": " they would make 100*656 bytes.
	var b strings.Builder
	for i := range procfile.MaxProcesses {
		typ := fmt.Sprintf("p%02d", i)
		b.WriteString(typ + ":" + strings.Repeat("y", 655-len(typ)-2) + "\n")
	}
	b.WriteString("#" + strings.Repeat("-", procfile.MaxSize-b.Len()-1))
	if b.Len() != procfile.MaxSize {
		t.Fatalf("test input is %d bytes", b.Len())
	}
	_, err = procfile.ParseBytes([]byte(b.String()))
	var pe *procfile.ParseError
	if !errors.Is(err, procfile.ErrTooLarge) || !errors.As(err, &pe) || pe.Line != procfile.MaxProcesses {
		t.Fatalf("input whose canonical form is over MaxSize: %v, want ErrTooLarge on line %d", err, procfile.MaxProcesses)
	}

	// At most MaxErrors errors are reported.
	_, err = procfile.ParseBytes([]byte(strings.Repeat("bad\n", 3*procfile.MaxErrors)))
	if pes := parseErrors(t, err); len(pes) != procfile.MaxErrors {
		t.Errorf("got %d errors, want MaxErrors", len(pes))
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	pf, err := procfile.Parse(iotest.ErrReader(boom))
	if pf != nil || !errors.Is(err, boom) {
		t.Fatalf("Parse = %v, %v; want the read error", pf, err)
	}
	var pe *procfile.ParseError
	if errors.As(err, &pe) {
		t.Fatalf("a read error is a *ParseError: %v", err)
	}
}

func TestNilProcfile(t *testing.T) {
	var pf *procfile.Procfile
	if _, ok := pf.Lookup(procfile.Web); ok {
		t.Error("Lookup on nil found a process")
	}
	if _, ok := pf.Release(); ok {
		t.Error("Release on nil found a process")
	}
	if pf.Types() != nil || pf.String() != "" || pf.Validate() != nil {
		t.Error("nil Procfile is not empty")
	}
	if n, err := pf.WriteTo(&bytes.Buffer{}); n != 0 || err != nil {
		t.Errorf("WriteTo = %d, %v", n, err)
	}
}

func TestTypes(t *testing.T) {
	pf, err := procfile.ParseBytes([]byte("worker: w\nweb: s\nrelease: r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pf.Types(), ","); got != "worker,web,release" {
		t.Errorf("Types = %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		proc []procfile.Process
		want error
	}{
		{"ok", []procfile.Process{{Type: "web", Command: "a", Line: 1}, {Type: "worker", Command: "b: c # d", Line: 2}}, nil},
		{"invalid type", []procfile.Process{{Type: "Web", Command: "a"}}, procfile.ErrInvalidType},
		{"empty type", []procfile.Process{{Type: "", Command: "a"}}, procfile.ErrSyntax},
		{"comment type", []procfile.Process{{Type: "#web", Command: "a"}}, procfile.ErrSyntax},
		{"colon in type", []procfile.Process{{Type: "web:x", Command: "a"}}, procfile.ErrSyntax},
		{"space around type", []procfile.Process{{Type: " web", Command: "a"}}, procfile.ErrSyntax},
		{"space around command", []procfile.Process{{Type: "web", Command: " a"}}, procfile.ErrSyntax},
		{"newline in command", []procfile.Process{{Type: "web", Command: "a\nworker: b"}}, procfile.ErrSyntax},
		{"empty command", []procfile.Process{{Type: "web"}}, procfile.ErrEmptyCommand},
		{"duplicate", []procfile.Process{{Type: "web", Command: "a"}, {Type: "web", Command: "b"}}, procfile.ErrDuplicate},
		{"long command", []procfile.Process{{Type: "web", Command: strings.Repeat("x", procfile.MaxLineLength)}}, procfile.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&procfile.Procfile{Processes: tc.proc}).Validate()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}
