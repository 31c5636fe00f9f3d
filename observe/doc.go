// Package observe holds the types that Slipway's packages report through:
// per-request records from the router, log lines from instances and the
// router, and platform events (deploys, restarts, crashes).
//
// Every hook is optional. A package that reports takes a hook as a field of
// its config and does nothing when it is nil, so embedding programs pay only
// for what they wire.
package observe
