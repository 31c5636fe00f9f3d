package local

import (
	"bufio"
	"os"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/slipwayhq/slipway/internal/oci"
)

// specInput is what a container's runtime spec is made from.
type specInput struct {
	args     []string
	env      []string
	cwd      string
	user     specs.User
	hostname string
	cgroup   string // cgroupsPath
	cpus     float64
	pids     int64  // <= 0: no limit
	netns    string // a network namespace to join; empty: the host's
	readOnly bool
}

// command returns the argv for a Procfile command (or the image's own when
// command is empty) in an image unpacked at rootfs.
func command(rootfs string, entrypoint, cmd []string, command string) []string {
	if strings.TrimSpace(command) == "" {
		return append(append([]string(nil), entrypoint...), cmd...)
	}
	if p, err := oci.SecureJoin(rootfs, "bin/sh"); err == nil {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return []string{"/bin/sh", "-c", command}
		}
	}
	return strings.Fields(command)
}

// mergeEnv returns the image's environment overridden by extra, sorted by
// name, with a default PATH.
func mergeEnv(image []string, extra map[string]string) []string {
	m := make(map[string]string)
	for _, kv := range image {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	if _, ok := m["PATH"]; !ok {
		m["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if _, ok := m["HOME"]; !ok {
		m["HOME"] = "/"
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// resolveUser turns an image's User ("", "name", "uid", "uid:gid",
// "name:group") into ids, reading the image's /etc/passwd and /etc/group.
func resolveUser(rootfs, user string) specs.User {
	if user == "" {
		return specs.User{}
	}
	u, g, hasGroup := strings.Cut(user, ":")
	var out specs.User
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		out.UID = uint32(n)
	} else if f := lookup(rootfs, "etc/passwd", u); f != nil && len(f) > 3 {
		n, _ := strconv.ParseUint(f[2], 10, 32)
		gid, _ := strconv.ParseUint(f[3], 10, 32)
		out.UID, out.GID = uint32(n), uint32(gid)
	}
	if hasGroup {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			out.GID = uint32(n)
		} else if f := lookup(rootfs, "etc/group", g); f != nil && len(f) > 2 {
			n, _ := strconv.ParseUint(f[2], 10, 32)
			out.GID = uint32(n)
		}
	}
	return out
}

func lookup(rootfs, file, name string) []string {
	p, err := oci.SecureJoin(rootfs, file)
	if err != nil {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 0 && fields[0] == name {
			return fields
		}
	}
	return nil
}

// runtimeSpec returns the OCI runtime spec of a container. It shares the
// host's network namespace and never sets an oomScoreAdj.
func runtimeSpec(in specInput) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: in.hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: in.readOnly},
		Process: &specs.Process{
			Args: in.args,
			Env:  in.env,
			Cwd:  in.cwd,
			User: in.user,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: in.cgroup,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if in.netns != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.netns})
	}
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		if _, err := os.Stat(f); err == nil {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	if in.readOnly {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	}
	s.Linux.Resources = &specs.LinuxResources{}
	if in.cpus > 0 {
		period := uint64(100000)
		quota := int64(in.cpus * float64(period))
		s.Linux.Resources.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if in.pids > 0 {
		limit := in.pids
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return s
}

// hostname returns a valid host name for an instance id.
func hostname(id string) string {
	if len(id) > 63 {
		id = id[:63]
	}
	return strings.TrimRight(id, "-")
}
