package build_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/build"
)

func TestRequestValidate(t *testing.T) {
	good := build.Request{App: "web", Source: build.Source{Dir: "."}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.Scope() != "web" || good.ImageName() != "slipway/web:latest" {
		t.Errorf("defaults: scope %q image %q", good.Scope(), good.ImageName())
	}
	bad := map[string]build.Request{
		"bad app name":    {App: "Web", Source: build.Source{Dir: "."}},
		"no source":       {App: "web"},
		"two sources":     {App: "web", Source: build.Source{Dir: ".", Tar: strings.NewReader("")}},
		"bad arg name":    {App: "web", Source: build.Source{Dir: "."}, Args: []build.Arg{{Name: "A=B"}}},
		"duplicate arg":   {App: "web", Source: build.Source{Dir: "."}, Args: []build.Arg{{Name: "A"}, {Name: "A"}}},
		"bad cache scope": {App: "web", Source: build.Source{Dir: "."}, CacheScope: "a/b"},
	}
	for name, r := range bad {
		if err := r.Validate(); !errors.Is(err, build.ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
	}
}

func TestProcessTypesLabelRoundTrip(t *testing.T) {
	ps := []build.Process{{Type: "web", Command: `bin/web -p "$PORT"`}, {Type: "worker", Command: "bin/worker"}}
	got, err := build.ProcessesFromLabel(build.ProcessTypesJSON(ps))
	if err != nil || !reflect.DeepEqual(got, ps) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
}

func TestStepError(t *testing.T) {
	cause := errors.New("exit code: 1")
	err := error(&build.StepError{Step: "go build", Log: []string{"main.go:3: undefined: x"}, Err: cause})
	if !errors.Is(err, build.ErrStepFailed) || !errors.Is(err, cause) {
		t.Fatal("StepError does not wrap ErrStepFailed and its cause")
	}
	if !strings.Contains(err.Error(), `"go build"`) || !strings.Contains(err.Error(), "undefined: x") {
		t.Errorf("message %q lacks the step or its log", err)
	}
}
