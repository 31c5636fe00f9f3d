// Package local is the embedded default scale.Scheduler: it runs every
// instance as an OCI container with runc on this machine.
//
// # How an instance runs
//
// Images come from a local OCI image layout (the directory the builder
// writes to), resolved by manifest digest or by ref.name annotation. Each
// image is unpacked once per digest into a cached, read-only root
// filesystem; each instance gets its own overlayfs upper layer on top of it,
// emptied on every restart (Heroku's ephemeral filesystem). The runtime spec
// comes from the image config (Env, WorkingDir, User, Entrypoint and Cmd),
// the formation's Env, PORT and DYNO. A Procfile command runs through
// /bin/sh -c when the image has /bin/sh, split on white space and exec'd
// when it has not.
//
// Every instance has its own directory under Config.StateDir holding its
// bundle, its stdout and stderr files and its exit status. The container is
// started by a tiny supervisor, the host's /bin/sh running `runc run` in the
// foreground and writing runc's exit status to a file, in its own session.
// The control plane is therefore not the parent of anything it must keep:
// when it dies, instances keep running and logging to their files, and
// Recover, in the next control plane, finds them by their directories and
// supervisor pids, watches them again (pidfd) and tails their log files on
// from where it stopped; instances that died meanwhile are reaped (runc
// state, overlay mount, cgroups, directory). Lines written while no control
// plane ran are stamped with the time they are read. Config.Logs gets every
// line once, except that after a control plane that was killed (rather than
// closed) up to half a second of lines can come again.
//
// Log files are truncated once read past Config.MaxLogFileBytes; a line
// written between the last read and the truncation can be lost.
//
// # Lifecycle
//
// A crashed instance (any exit that the scheduler did not ask for) shows
// StateCrashed and is restarted: the first time at once, then after
// Config.Backoff.Initial, doubling up to Config.Backoff.Max; the doubling
// starts over once an instance has stayed up for Config.Backoff.Max.
// Stopping sends SIGTERM to every process of the container, then SIGKILL
// once the process type's grace period has passed. A web instance is
// StateUp and Healthy once its port accepts TCP connections; one that never
// binds its port stays StateStarting and unhealthy (it is not restarted for
// that). Health is checked again every Config.HealthInterval.
//
// Memory limits are set on a per-instance parent cgroup; an instance killed
// by SIGKILL that the scheduler did not send, after its cgroup hit its
// limit, is reported as OOMKilled (cgroup v1: memory.failcnt of that
// parent; cgroup v2: its memory.events oom_kill, not tested on this VM).
//
// # Isolation and threat model
//
// Instances get their own pid, mount, ipc and uts namespaces, cgroup memory,
// CPU and pids limits, no new privileges, runc's default capability set
// (AUDIT_WRITE, KILL, NET_BIND_SERVICE), masked /proc paths, and optionally
// a read-only root filesystem. They run as the image's user, which is root
// when the image names none, and there is no user namespace and no seccomp
// profile: a process that is root in its image is root on the host's
// kernel, contained only by namespaces and capabilities.
//
// With HostNetwork (the default) instances share the host's network
// namespace: each web instance listens on a free port of Config.Ports
// (20000-29999 unless set) given in PORT, and every instance can reach every port on the machine, including
// other apps' instances and the control plane's own. This suits one team's
// trusted apps on one machine, as with Heroku-style single-tenant hosts; it
// does not isolate mutually hostile tenants. With IsolatedNetwork each
// instance has its own network namespace joined to the host by a veth pair
// on a /30 of Config.Subnet (PORT is 5000, Instance.Addr the instance's
// address): it cannot reach the host's loopback services nor, unless the
// host forwards IPv4, other instances; it can still reach host services that
// listen on all addresses through its gateway, and nothing beyond the
// machine unless the operator sets up NAT. Run mutually hostile tenants on
// the Kubernetes scheduler with network policies.
//
// # Running under systemd
//
// Each instance's supervising shell (and the `runc run` it starts) is moved
// out of the control plane's cgroup into <CgroupParent>/supervisors in every
// hierarchy but cpuset, and the container into its own, so that stopping a
// systemd unit's cgroup stops the control plane without killing instances.
// Should the move fail (it is logged), the unit needs KillMode=process for
// instances to outlive control-plane restarts.
//
// The scheduler needs root (runc, overlayfs, cgroups). It never asks for a
// negative oomScoreAdj, which root without CAP_SYS_RESOURCE may not set.
package local
