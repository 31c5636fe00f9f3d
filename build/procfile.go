package build

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// readProcfile parses dir/Procfile. It returns nil, nil when there is none.
// This is the one place the build package reads Procfiles.
func readProcfile(dir string) ([]Process, error) {
	f, err := os.Open(filepath.Join(dir, "Procfile"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// TODO: switch to build/procfile once it lands.
	var ps []Process
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := procLine.FindStringSubmatch(line)
		if m == nil {
			return nil, &ProcfileError{Line: n, Err: fmt.Errorf("want \"<type>: <command>\", got %q", line)}
		}
		if seen[m[1]] {
			return nil, &ProcfileError{Line: n, Err: fmt.Errorf("process type %q defined twice", m[1])}
		}
		seen[m[1]] = true
		ps = append(ps, Process{Type: m[1], Command: m[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, &ProcfileError{Err: err}
	}
	if len(ps) == 0 {
		return nil, &ProcfileError{Err: errors.New("no process types")}
	}
	return ps, nil
}

var procLine = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)\s*:\s*(\S.*)$`)
