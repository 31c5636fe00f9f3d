// Package build turns an app's source into a runnable OCI image plus the
// app's process types, the way `git push heroku main` would build it.
//
// The package holds the seam and everything about a build that does not need
// a build engine:
//
//   - Builder, the interface a platform calls, with its typed Request (a
//     source directory or tar stream, app name, build args, cache scope,
//     target image name, progress) and Result (manifest digest, image config,
//     process types, duration, cache use);
//   - the typed errors a Builder returns (ErrNoBuildStrategy, *StepError,
//     ErrUnsafeSource, ErrSourceTooLarge, *ProcfileError);
//   - source preparation (PrepareSource): safe tar extraction, the walk that
//     rejects escaping symlinks and device files, .dockerignore/.slugignore
//     and the size limit;
//   - detection and planning (ReadFacts, NewPlan): a Dockerfile wins, as on
//     Dokku; otherwise a provider per language (Go, Node.js, Python, static
//     sites) turns source facts into a Plan of steps on a Stack of build and
//     run images, as Railpack does. Planning is pure and table-tested.
//
// The BuildKit implementation lives in build/buildkit; build/buildtest is the
// conformance suite every Builder runs; build/procfile parses Procfiles.
//
// # Image conventions
//
// Images built from a detected language put the app in /app (WorkingDir),
// binaries in /app/bin (on PATH, as Heroku's Go buildpack does), run as the
// stack's non-root user when it has one, never bake PORT, and carry the
// process types as JSON in the label named by ProcessTypesLabel. Cmd runs
// the web process through /bin/sh -c.
package build
