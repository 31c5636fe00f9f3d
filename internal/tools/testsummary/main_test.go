package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummaryKeepsFailuresOfEachStage(t *testing.T) {
	dir := t.TempDir()
	unit := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"race detected\n"}
{"Action":"fail","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: SLIPWAY_X is not set\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"fail","Package":"p"}
{"Action":"fail","Package":"q"}
`
	integration := `{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestC"}
`
	os.WriteFile(filepath.Join(dir, "unit.json"), []byte(unit), 0o644)
	os.WriteFile(filepath.Join(dir, "integration.json"), []byte(integration), 0o644)
	out, err := exec.Command("go", "run", ".", filepath.Join(dir, "unit.json"), filepath.Join(dir, "integration.json")).CombinedOutput()
	if err == nil {
		t.Fatalf("a failing run exited 0:\n%s", out)
	}
	for _, want := range []string{
		"FAIL unit p TestA",
		"FAIL (package) unit q",
		"SKIP unit p TestB: b_test.go:9: SLIPWAY_X is not set",
		"2 passed, 2 failed, 1 skipped",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}
