package release_test

import (
	"slices"
	"testing"

	"github.com/slipwayhq/slipway/release"
	"github.com/slipwayhq/slipway/scale"
)

func TestWebRoute(t *testing.T) {
	up := func(id, addr string) scale.Instance {
		return scale.Instance{ID: id, App: "a", Release: 2, ProcessType: "web", State: scale.StateUp, Healthy: true, Addr: addr}
	}
	other := up("o", "127.0.0.1:5")
	other.Release = 1
	worker := up("w", "127.0.0.1:6")
	worker.ProcessType = "worker"
	sick := up("s", "127.0.0.1:7")
	sick.Healthy = false
	starting := up("t", "127.0.0.1:8")
	starting.State = scale.StateStarting
	noAddr := up("n", "")
	rt := release.WebRoute("a", 2, []scale.Instance{up("z", "127.0.0.1:2"), other, worker, sick, starting, noAddr, up("b", "127.0.0.1:1")})
	want := []release.Backend{{ID: "b", Addr: "127.0.0.1:1"}, {ID: "z", Addr: "127.0.0.1:2"}}
	if rt.App != "a" || rt.Release != 2 || !slices.Equal(rt.Backends, want) {
		t.Errorf("WebRoute = %+v, want backends %v", rt, want)
	}
}
