// Command benchcmd builds one app with Slipway's BuildKit builder, for
// scripts/bench-build.sh (which times it against raw buildctl).
//
//	benchcmd -addr ADDR -stacks DIR -output LAYOUT -src DIR -app NAME -scope SCOPE -image REF [-progress]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/slipwayhq/slipway/build"
	"github.com/slipwayhq/slipway/build/buildkit"
)

func main() {
	addr := flag.String("addr", os.Getenv("SLIPWAY_BUILDKIT_ADDR"), "buildkitd address")
	stacks := flag.String("stacks", os.Getenv("SLIPWAY_STACKS"), "stack layouts directory (scripts/stacks.sh)")
	output := flag.String("output", "", "OCI layout to store the image in")
	src := flag.String("src", "", "source directory")
	app := flag.String("app", "bench", "app name")
	scope := flag.String("scope", "", "cache scope")
	image := flag.String("image", "", "image name")
	progress := flag.Bool("progress", false, "print progress lines on stderr")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b, err := buildkit.New(ctx, buildkit.Config{Addr: *addr, Output: *output, Stacks: build.LocalStacks(*stacks)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcmd:", err)
		os.Exit(1)
	}
	defer b.Close()
	req := build.Request{App: *app, Source: build.Source{Dir: *src}, CacheScope: *scope, Image: *image}
	if *progress {
		req.ProgressWriter = os.Stderr
	}
	res, err := b.Build(ctx, req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcmd:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s %.3fs %d/%d cached\n", res.Strategy, res.Digest, res.Duration.Seconds(), res.Cached, res.Steps)
}
