package buildtest

import (
	"encoding/json"
	"os"
	"strings"
)

// lastCmd returns the command of a Dockerfile's last CMD line, as a shell
// command (exec-form arguments joined by spaces).
func lastCmd(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	cmd := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "CMD ")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		var args []string
		if json.Unmarshal([]byte(rest), &args) == nil {
			cmd = strings.Join(args, " ")
		} else {
			cmd = rest
		}
	}
	return cmd
}
