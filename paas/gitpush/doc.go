// Package gitpush deploys apps by `git push`, as `git push heroku main` and
// `git push dokku main` do, over Git's smart HTTP protocol.
//
// A Server is an http.Handler that serves one bare repository per app under
// Root (created on the first push). A push to the deploy branch runs the
// Server's Deploy function before the branch moves: Deploy gets the pushed
// tree as a tar stream and a writer whose lines the pusher sees as
// "remote: ..." while the build and release run. When Deploy fails, the push
// is rejected and the branch keeps its old commit, so the repository always
// holds what was last deployed.
//
// The hand-over from git to the Server uses a pre-receive hook that needs
// nothing but /bin/sh and cat: the Server gives each push a private directory
// with two named pipes; the hook writes the ref updates (and git's quarantine
// variables, so the Server can read the pushed objects) into one and relays
// the other to the pusher.
//
// Authentication is the embedding program's: Authorize sees every request.
// Clients typically put a token in the remote URL
// (http://git:TOKEN@host/git/APP.git) or in a credential helper.
package gitpush
