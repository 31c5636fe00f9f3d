package procfile_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/slipwayhq/slipway/build/procfile"
)

func Example() {
	const src = `# Rails app
web: bundle exec puma -C config/puma.rb -b tcp://0.0.0.0:$PORT
worker: bundle exec sidekiq
release: bundle exec rails db:migrate
`
	pf, err := procfile.Parse(strings.NewReader(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range pf.Processes {
		fmt.Printf("line %d: %s runs %q\n", p.Line, p.Type, p.Command)
	}
	if rel, ok := pf.Release(); ok {
		fmt.Println("release phase:", rel.Command)
	}
	// Output:
	// line 2: web runs "bundle exec puma -C config/puma.rb -b tcp://0.0.0.0:$PORT"
	// line 3: worker runs "bundle exec sidekiq"
	// line 4: release runs "bundle exec rails db:migrate"
	// release phase: bundle exec rails db:migrate
}

func ExampleParse_errors() {
	const src = "web: bundle exec puma\nWeb_1: bin/web\nworker:\nweb: rackup\n"
	_, err := procfile.Parse(strings.NewReader(src))

	// Every bad line is reported.
	fmt.Println(err)

	// Branch on what is wrong with errors.Is; errors.As finds the first line.
	fmt.Println(errors.Is(err, procfile.ErrInvalidType), errors.Is(err, procfile.ErrDuplicate), errors.Is(err, procfile.ErrSyntax))
	var pe *procfile.ParseError
	if errors.As(err, &pe) {
		fmt.Printf("first error on line %d, type %q\n", pe.Line, pe.Type)
	}
	// Output:
	// procfile: line 2: "Web_1" is not a valid process type: invalid name: process type "Web_1" has 'W' at byte 0; only lower-case letters, digits and '-' are allowed; use "web-1"
	// procfile: line 3: empty command for process type "worker"
	// procfile: line 4: duplicate process type "web": first declared on line 1
	// true true false
	// first error on line 2, type "Web_1"
}

func ExampleParseBytes() {
	// CRLF line endings, a byte order mark and tabs are fine.
	pf, err := procfile.ParseBytes([]byte("\xef\xbb\xbfweb:\tnode server.js\r\nclock:  node clock.js\r\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pf.Types())
	// Output:
	// [web clock]
}

func ExampleProcfile_Lookup() {
	pf, err := procfile.ParseBytes([]byte("web: bin/web\nworker: bin/worker -q high\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if p, ok := pf.Lookup("worker"); ok {
		fmt.Println(p.Command)
	}
	_, ok := pf.Release()
	fmt.Println("has release phase:", ok)
	// Output:
	// bin/worker -q high
	// has release phase: false
}

func ExampleProcfile_WriteTo() {
	pf, err := procfile.ParseBytes([]byte("# comment\n  web:bin/web  \r\n\n\tworker:   bin/worker\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The canonical form: comments and extra whitespace go.
	pf.Processes = append(pf.Processes, procfile.Process{Type: procfile.ReleaseType, Command: "bin/migrate"})
	if err := pf.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := pf.WriteTo(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// web: bin/web
	// worker: bin/worker
	// release: bin/migrate
}
