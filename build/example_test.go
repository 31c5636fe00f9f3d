package build_test

import (
	"fmt"

	"github.com/slipwayhq/slipway/build"
)

// Detection and planning are pure: facts about a source in, a plan out.
func ExampleNewPlan() {
	plan, err := build.NewPlan(build.Facts{
		GoMod:      true,
		GoModule:   "example.com/acme/api",
		GoSum:      true,
		GoRootMain: true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("strategy:", plan.Strategy)
	for _, s := range plan.Steps {
		fmt.Println("step:", s.Name)
	}
	for _, p := range plan.Processes {
		fmt.Printf("%s: %s\n", p.Type, p.Command)
	}
	// Output:
	// strategy: go
	// step: go mod download
	// step: go build
	// web: api
}
