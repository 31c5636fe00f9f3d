// Package buildkit is the BuildKit implementation of build.Builder.
//
// A Builder connects to buildkitd (moby/buildkit v0.33) and, for each
// request, prepares the source (build.PrepareSource), detects the strategy
// (build.ReadFacts, build.NewPlan) and solves it through a gateway build:
//
//   - Dockerfile apps run BuildKit's built-in dockerfile.v0 frontend (no
//     frontend image is pulled). Stack images are offered to FROM lines by
//     name as oci-layout named contexts, so Dockerfiles build offline.
//   - Other apps get LLB generated from the plan: dependency steps first
//     with only their input files copied (so a source change does not
//     re-download dependencies), per-app persistent cache mounts for module
//     and package caches (keyed "slipway/<cache scope>/<name>"), then /app
//     copied onto the run image, owned by the stack's user.
//
// The image is exported into a local OCI image layout (Config.Output)
// through a content store, so blobs the layout already has are not sent
// again; index.json is then updated under a file lock, with the entry
// annotated org.opencontainers.image.ref.name = the request's image name.
// With Config.Push the image is also pushed to its registry.
//
// The image config gets the process types as JSON in the label
// build.ProcessTypesLabel ("io.slipway.process-types").
package buildkit
