package scale_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/scale"
)

func TestFormationValidateEnv(t *testing.T) {
	f := scale.Formation{App: "a", Release: 1, Image: scale.Image{Digest: "sha256:x"},
		Env: map[string]string{"OK": "fine=value"}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, env := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"A\x00": "x"}, {"A": "secret\x00"}} {
		f.Env = env
		err := f.Validate()
		if !errors.Is(err, scale.ErrInvalidFormation) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Validate(env %q) = %v", env, err)
		}
		o := scale.OneOff{App: "a", Release: 1, Image: f.Image, Env: env, Command: "x"}
		if err := o.Validate(); !errors.Is(err, scale.ErrInvalidFormation) {
			t.Errorf("OneOff.Validate(env %q) = %v", env, err)
		}
	}
}

func TestFormationValidateCounts(t *testing.T) {
	for _, n := range []int{-1, scale.MaxInstancesPerType + 1} {
		f := scale.Formation{App: "a", Release: 1, Image: scale.Image{Ref: "r"}, Processes: []scale.Process{{Type: "web", Count: n}}}
		if err := f.Validate(); !errors.Is(err, scale.ErrInvalidFormation) {
			t.Errorf("count %d: %v", n, err)
		}
	}
}
