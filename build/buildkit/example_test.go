package buildkit_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildkit"
)

// Build an app from a source directory into a local OCI layout, rendering
// BuildKit's own progress display on stderr.
func Example() {
	ctx := context.Background()
	b, err := buildkit.New(ctx, buildkit.Config{
		Addr:   os.Getenv("SLIPWAY_BUILDKIT_ADDR"),
		Output: "/var/lib/slipway/images",
		Stacks: build.LocalStacks(os.Getenv("SLIPWAY_STACKS")),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	display, err := progressui.NewDisplay(os.Stderr, progressui.AutoMode)
	if err != nil {
		log.Fatal(err)
	}
	ch := make(chan *client.SolveStatus)
	done := make(chan struct{})
	go func() {
		defer close(done)
		display.UpdateFrom(ctx, ch)
	}()
	res, err := b.BuildWithStatus(ctx, build.Request{
		App:    "web",
		Source: build.Source{Dir: "examples/apps/go-web"},
		Image:  "slipway/web:v1",
	}, ch)
	<-done
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Digest, res.Processes)
}
