// Package scale holds the Scheduler contract: what turns "web=3 worker=1 of
// release v7" into running processes, and what reports on them.
//
// A Scheduler runs the instances of an app's releases. It knows nothing of
// HTTP routing: it starts processes, gives web instances a port, restarts them
// when they crash, and reports their state. The release manager drives it to
// put a new release beside the old one and then retire the old one; the router
// sends traffic to the addresses it reports.
//
// Implementations: scale/local runs instances as OCI containers with runc on
// one machine (the embedded default). scale/scaletest holds the conformance
// suite every implementation runs, and an in-memory Scheduler that passes it.
//
// # Mapping to Kubernetes
//
// The contract is shaped so that a Kubernetes scheduler implements it without
// change:
//
//   - Apply: one Deployment per (app, release, process type), named
//     "<app>-v<release>-<type>", replicas = Count; env from a Secret; the web
//     port as a container port plus the PORT variable. Applying another
//     release creates other Deployments, so two releases run side by side
//     exactly as the release manager needs.
//   - StopRelease: delete that release's Deployments with propagation
//     Foreground and terminationGracePeriodSeconds = the grace period.
//   - Run: a Job with backoffLimit 0 (attached: watch the Pod and stream its
//     log; detached: ttlSecondsAfterFinished = TTL); activeDeadlineSeconds is
//     the timeout.
//   - Instances: Pods selected by the app/release/type labels; State from the
//     Pod phase and container statuses (CrashLoopBackOff is StateCrashed,
//     OOMKilled is ExitStatus.OOMKilled); Health from readiness; Addr the Pod
//     IP and port.
//   - Logs: the Pods' log streams, merged.
//   - StopApp: delete every object labelled with the app.
//   - Recover: list the labelled objects; nothing to re-attach since the
//     kubelet keeps running them.
package scale
