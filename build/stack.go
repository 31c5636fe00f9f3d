package build

import (
	"fmt"
	"path/filepath"
)

// Image names where a stack image comes from: a registry reference or an
// OCI image layout on the builder's machine.
type Image struct {
	// Ref is a registry reference, e.g. "registry.example:5000/stacks/go:1.26".
	Ref string
	// Layout is the directory of an OCI image layout holding the image;
	// it is used instead of Ref when set.
	Layout string
	// Name picks the image in Layout by its org.opencontainers.image.ref.name
	// annotation. If empty, the layout must hold exactly one image.
	Name string
}

// Validate reports whether exactly one of Ref and Layout is set.
func (i Image) Validate() error {
	if (i.Ref == "") == (i.Layout == "") {
		return fmt.Errorf("stack image: exactly one of Ref and Layout must be set")
	}
	return nil
}

func (i Image) String() string {
	if i.Layout != "" {
		if i.Name != "" {
			return "oci-layout:" + i.Layout + ":" + i.Name
		}
		return "oci-layout:" + i.Layout
	}
	return i.Ref
}

// Stack is the pair of images a detected language builds on: the build
// image runs the plan's steps; the run image receives /app.
type Stack struct {
	Build Image
	Run   Image
	// User is the user the app runs as ("uid:gid" or a name known to the
	// run image). If empty, the run image's own user.
	User string
}

// Stacks maps Plan.Stack names ("go", "node", "python", "static") to stacks.
type Stacks map[string]Stack

// LocalStacks returns the stacks that scripts/stacks.sh makes in dir: one
// OCI layout per image (base, go, node, python), running apps as uid 1000.
func LocalStacks(dir string) Stacks {
	l := func(name string) Image { return Image{Layout: filepath.Join(dir, name)} }
	const user = "1000:1000"
	return Stacks{
		"go":     {Build: l("go"), Run: l("base"), User: user},
		"node":   {Build: l("node"), Run: l("node"), User: user},
		"python": {Build: l("python"), Run: l("python"), User: user},
		"static": {Build: l("base"), Run: l("base"), User: user},
	}
}
