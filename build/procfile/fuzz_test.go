package procfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/build/procfile"
)

// FuzzParse checks that Parse never panics and that what it returns holds
// the package's promises (see checkResult): on success every type is a valid
// DNS label, types are unique, commands are not empty, and String reads back
// to the same processes; on failure the error is a join of *ParseError, each
// naming its line and wrapping exactly one sentinel.
func FuzzParse(f *testing.F) {
	// The fuzzer minimizes each new interesting input with a number of runs
	// that grows with the square of its length: at a few KiB that takes
	// a short run (CI: 20s) entirely. Parsing is line by line, so short
	// inputs find what long ones would; TestLimits and the golden files
	// cover the size limits.
	const maxLen = 512
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.procfile"))
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range inputs {
		src, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		if len(src) <= maxLen {
			f.Add(src)
		}
	}
	for _, s := range []string{
		"web:a",
		"web:\ta\r\n",
		"\xef\xbb\xbf\xef\xbb\xbfweb: a",
		"web: a\n\rworker: b",
		"a: b\na:c",
		"\u00a0web: a\u00a0\n",
		"web: a\u2028worker: b",
		"#web: a\n//worker: b\n  # x: y",
		"web::",
		"web: :",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > maxLen {
			return
		}
		pf, err := procfile.Parse(bytes.NewReader(src))
		checkResult(t, src, pf, err)
	})
}
