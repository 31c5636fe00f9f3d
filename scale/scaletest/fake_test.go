package scaletest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/scale"
	"github.com/slipwayhq/slipway/scale/scaletest"
)

func TestFakeConformance(t *testing.T) {
	scaletest.Run(t, scaletest.Harness{
		New:            func(*testing.T) scale.Scheduler { return scaletest.NewFake(scaletest.FakeConfig{}) },
		Reopen:         func(_ *testing.T, s scale.Scheduler) scale.Scheduler { return s.(*scaletest.Fake).Reopen() },
		Image:          scale.Image{Ref: "fake"},
		NoCommandImage: scale.Image{Ref: "empty"},
		Programs:       scaletest.FakePrograms(),
		Wait:           10 * time.Second,
	})
}

func TestFakeListenAndHealth(t *testing.T) {
	ctx := context.Background()
	f := scaletest.NewFake(scaletest.FakeConfig{Listen: true})
	defer f.Close()
	defer f.StopApp(ctx, "shop")
	err := f.Apply(ctx, scale.Formation{App: "shop", Release: 1, Image: scale.Image{Ref: "x"},
		Processes: []scale.Process{{Type: "web", Command: "web", Count: 1, Port: true}}})
	if err != nil {
		t.Fatal(err)
	}
	var in scale.Instance
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		is, _ := f.Instances(ctx, scale.Query{App: "shop"})
		if len(is) == 1 && is[0].Healthy {
			in = is[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("web never healthy")
		}
	}
	resp, err := http.Get("http://" + in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != in.ID {
		t.Fatalf("web answered %q, want its id %s", body, in.ID)
	}
	if err := f.SetHealthy(in.ID, false); err != nil {
		t.Fatal(err)
	}
	is, _ := f.Instances(ctx, scale.Query{App: "shop"})
	if is[0].Healthy {
		t.Fatal("SetHealthy(false) did not stick")
	}
}

// A test of a release manager scripts the release phase with a Program.
func ExampleFake() {
	ctx := context.Background()
	f := scaletest.NewFake(scaletest.FakeConfig{
		Program: func(command string) scaletest.Program {
			if command == "rake db:migrate" {
				return func(p *scaletest.Proc) int {
					fmt.Fprintln(p.Stdout, "migrating")
					return 1 // the release phase fails
				}
			}
			return scaletest.FakeProgram(command)
		},
	})
	defer f.Close()
	res, err := f.Run(ctx, scale.OneOff{App: "shop", Release: 2, Image: scale.Image{Ref: "shop:v2"}, Type: "release", Command: "rake db:migrate"})
	fmt.Println(res.Exit.Code, res.Exit.Reason, err)
	// Output: 1 exited with code 1 <nil>
}

// A test holds a web instance in StateStarting until it lets it bind, to
// check what waits for health (a release manager's web phase, say).
func ExampleFake_slowStart() {
	ctx := context.Background()
	bind := make(chan struct{})
	f := scaletest.NewFake(scaletest.FakeConfig{
		Program: func(command string) scaletest.Program {
			return func(p *scaletest.Proc) int {
				select {
				case <-bind:
					p.Bind()
				case <-p.Context().Done():
					return -1
				}
				<-p.Terminated()
				return 0
			}
		},
	})
	defer f.Close()
	defer f.StopApp(ctx, "shop")
	_ = f.Apply(ctx, scale.Formation{App: "shop", Release: 3, Image: scale.Image{Ref: "shop:v3"},
		Processes: []scale.Process{{Type: "web", Command: "puma", Count: 1, Port: true}}})
	is, _ := f.Instances(ctx, scale.Query{App: "shop"})
	fmt.Println(is[0].State, is[0].Healthy)
	close(bind)
	for is[0].State != scale.StateUp {
		time.Sleep(time.Millisecond)
		is, _ = f.Instances(ctx, scale.Query{App: "shop"})
	}
	fmt.Println(is[0].State, is[0].Healthy)
	// Output:
	// starting false
	// up true
}
