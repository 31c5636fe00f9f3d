package build

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/slipwayhq/slipway/build/procfile"
)

// readProcfile parses dir/Procfile with build/procfile. It returns nil, nil
// when there is none, and a *ProcfileError wrapping the parser's error when
// it is invalid or declares no process. This is the one place the build
// package reads Procfiles.
func readProcfile(dir string) ([]Process, error) {
	f, err := os.Open(filepath.Join(dir, "Procfile"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := procfile.Parse(f)
	if err != nil {
		pe := &ProcfileError{Err: err}
		var perr *procfile.ParseError
		if errors.As(err, &perr) {
			pe.Line = perr.Line
		}
		return nil, pe
	}
	if len(pf.Processes) == 0 {
		return nil, &ProcfileError{Err: errors.New("the Procfile declares no process types")}
	}
	ps := make([]Process, len(pf.Processes))
	for i, p := range pf.Processes {
		ps[i] = Process{Type: p.Type, Command: p.Command}
	}
	return ps, nil
}
