package local

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroups manages the per-instance parent cgroups, under a cgroup of their
// own per state directory so that schedulers on other state directories
// never take each other's cgroups for leftovers. Each instance id gets
// <parent>/<id> in every hierarchy; runc puts the container in
// <parent>/<id>/c. The memory limit is set on <parent>/<id>, so that its
// memory.failcnt survives the container's own cgroup, which runc removes
// when the container ends.
type cgroups struct {
	root   string // e.g. /sys/fs/cgroup
	parent string // e.g. slipway/1a2b3c4d: Config.CgroupParent and a hash of the state dir
}

func (c cgroups) v2() bool {
	_, err := os.Stat(filepath.Join(c.root, "cgroup.controllers"))
	return err == nil
}

// path returns runc's cgroupsPath for the instance.
func (c cgroups) path(id string) string { return "/" + c.parent + "/" + id + "/c" }

func (c cgroups) memoryDir(id string) string {
	if c.v2() {
		return filepath.Join(c.root, c.parent, id)
	}
	return filepath.Join(c.root, "memory", c.parent, id)
}

// prepare makes the instance's memory cgroup with limit (0: none) and
// resets its failure counter.
func (c cgroups) prepare(id string, limit int64) error {
	dir := c.memoryDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if c.v2() {
		// Make the memory controller available to the container's cgroup.
		d := c.root
		for _, part := range strings.Split(c.parent, "/") {
			d = filepath.Join(d, part)
			_ = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0o644)
		}
		_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0o644)
		v := "max"
		if limit > 0 {
			v = strconv.FormatInt(limit, 10)
		}
		return os.WriteFile(filepath.Join(dir, "memory.max"), []byte(v), 0o644)
	}
	_ = os.WriteFile(filepath.Join(dir, "memory.failcnt"), []byte("0"), 0o644)
	v := "-1"
	if limit > 0 {
		v = strconv.FormatInt(limit, 10)
	}
	return os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(v), 0o644)
}

// hitLimit reports whether the instance's memory cgroup hit its limit since
// prepare.
func (c cgroups) hitLimit(id string) bool {
	if c.v2() {
		b, err := os.ReadFile(filepath.Join(c.memoryDir(id), "memory.events"))
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, _ := strings.Cut(l, " "); k == "oom_kill" && v != "0" {
				return true
			}
		}
		return false
	}
	b, err := os.ReadFile(filepath.Join(c.memoryDir(id), "memory.failcnt"))
	if err != nil {
		return false
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n > 0
}

// remove removes the instance's cgroups in every hierarchy. Cgroups still
// holding processes stay; the error says so.
func (c cgroups) remove(id string) error {
	var dirs []string
	if c.v2() {
		dirs = []string{filepath.Join(c.root, c.parent, id)}
	} else {
		ents, err := os.ReadDir(c.root)
		if err != nil {
			return err
		}
		for _, e := range ents {
			dirs = append(dirs, filepath.Join(c.root, e.Name(), c.parent, id))
		}
	}
	var errs []error
	for _, d := range dirs {
		for _, p := range []string{filepath.Join(d, "c"), d} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrInvalid) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// supervisors is the cgroup, beside the instances', that holds their
// supervising shells and `runc run` processes, so that stopping the control
// plane's own cgroup (a systemd unit's, say) does not kill them.
const supervisors = "supervisors"

// adopt moves pid into the supervisors cgroup of every hierarchy but
// cpuset (whose new cgroups have no CPUs until set). Errors are returned
// joined; the process then stays where it is in that hierarchy.
func (c cgroups) adopt(pid int) error {
	var dirs []string
	if c.v2() {
		dirs = []string{filepath.Join(c.root, c.parent, supervisors)}
	} else {
		ents, err := os.ReadDir(c.root)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Name() != "cpuset" {
				dirs = append(dirs, filepath.Join(c.root, e.Name(), c.parent, supervisors))
			}
		}
	}
	var errs []error
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// list returns the instance ids that have cgroups.
func (c cgroups) list() []string {
	seen := map[string]bool{}
	var roots []string
	if c.v2() {
		roots = []string{filepath.Join(c.root, c.parent)}
	} else {
		ents, _ := os.ReadDir(c.root)
		for _, e := range ents {
			roots = append(roots, filepath.Join(c.root, e.Name(), c.parent))
		}
	}
	var out []string
	for _, r := range roots {
		ents, _ := os.ReadDir(r)
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] && e.Name() != supervisors {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out
}
