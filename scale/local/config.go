package local

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"syscall"
	"time"

	"github.com/slipwayhq/slipway/observe"
)

// Config configures a Scheduler. StateDir and Images are required; every
// other zero value has a documented default.
type Config struct {
	// StateDir holds the scheduler's state: instance directories and runc's
	// state. It must be on a file system that overlayfs accepts as an upper
	// layer (ext4, xfs; not overlayfs or tmpfs on old kernels).
	StateDir string
	// Images is the OCI image layout directory images are read from.
	Images string
	// CacheDir holds the unpacked root filesystems, one per image digest.
	// Several schedulers may share it. Empty means StateDir/images.
	CacheDir string
	// Runc is the runc binary. Empty means /usr/sbin/runc.
	Runc string
	// Shell is the host shell that supervises each container. Empty means
	// /bin/sh.
	Shell string
	// CgroupRoot is where the cgroup file systems are mounted. Empty means
	// /sys/fs/cgroup.
	CgroupRoot string
	// CgroupParent is the cgroup (relative to each hierarchy's root) under
	// which instances' cgroups are made, in a cgroup named after a hash of
	// StateDir. Empty means "slipway".
	CgroupParent string
	// Backoff paces the restarts of crashed instances.
	Backoff Backoff
	// HealthInterval is how often an up web instance's port is checked.
	// Zero means one second.
	HealthInterval time.Duration
	// PidsLimit bounds the processes (and threads) of one instance. Zero
	// means 4096; negative means no limit.
	PidsLimit int64
	// Network says how instances are networked. Zero is HostNetwork.
	Network Network
	// Ports is where HostNetwork takes each web instance's port. The zero
	// value means 20000-29999: below Linux's ephemeral range (32768-60999),
	// so that neither the source port of an outgoing connection nor another
	// program's listener on port 0 takes an instance's port between its
	// allocation and the app's listen, or while the instance restarts.
	Ports PortRange
	// Subnet is where IsolatedNetwork takes a /30 per instance. Schedulers
	// on one machine need subnets of their own. The zero value means
	// 10.213.0.0/16.
	Subnet netip.Prefix
	// IP is iproute2's ip binary, used by IsolatedNetwork. Empty means the
	// one on PATH.
	IP string
	// ReadOnlyRootfs mounts instances' root file systems read-only, with a
	// tmpfs on /tmp.
	ReadOnlyRootfs bool
	// LinesPerApp bounds the log lines kept in memory per app. Zero means
	// observe.DefaultLinesPerApp.
	LinesPerApp int
	// MaxLogFileBytes is the size past which an instance's stdout or
	// stderr file is truncated once read. Zero means 8 MiB.
	MaxLogFileBytes int64
	// Logs, if not nil, receives every log line as it is read.
	Logs observe.LogSink
	// Events, if not nil, receives instance events.
	Events observe.EventSink
	// Logger receives the scheduler's own diagnostics. Nil means silent.
	Logger *slog.Logger
}

// PortRange is an inclusive range of TCP ports.
type PortRange struct {
	First, Last int
}

// Backoff paces restarts: the first restart after a crash is immediate, the
// next waits Initial, then twice as long each time up to Max.
type Backoff struct {
	Initial time.Duration // zero means 1 s
	Max     time.Duration // zero means 5 min
}

// Delay returns how long to wait before the restart that follows streak
// crashes in a row (1 for the first).
func (b Backoff) Delay(streak int) time.Duration {
	if streak <= 1 {
		return 0
	}
	initial, maxd := b.Initial, b.Max
	if initial <= 0 {
		initial = time.Second
	}
	if maxd <= 0 {
		maxd = 5 * time.Minute
	}
	d := initial
	for i := 2; i < streak && d < maxd; i++ {
		d *= 2
	}
	return min(d, maxd)
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.StateDir == "":
		return errors.New("local: Config.StateDir is required")
	case c.Images == "":
		return errors.New("local: Config.Images is required")
	case c.Network != HostNetwork && c.Network != IsolatedNetwork:
		return fmt.Errorf("local: unknown Config.Network %d", c.Network)
	case c.Subnet.IsValid() && (!c.Subnet.Addr().Is4() || c.Subnet.Bits() > 29):
		return errors.New("local: Config.Subnet must be an IPv4 prefix of /29 or wider")
	case c.Ports != (PortRange{}) && (c.Ports.First < 1 || c.Ports.Last > 65535 || c.Ports.First > c.Ports.Last):
		return fmt.Errorf("local: Config.Ports %d-%d is not a range of TCP ports", c.Ports.First, c.Ports.Last)
	case c.Backoff.Initial < 0 || c.Backoff.Max < 0 || c.HealthInterval < 0 || c.MaxLogFileBytes < 0:
		return errors.New("local: negative duration or size in Config")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Runc == "" {
		c.Runc = "/usr/sbin/runc"
	}
	if c.Shell == "" {
		c.Shell = "/bin/sh"
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup"
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "slipway"
	}
	if c.Ports == (PortRange{}) {
		c.Ports = PortRange{First: 20000, Last: 29999}
	}
	if !c.Subnet.IsValid() {
		c.Subnet = defaultSubnet
	}
	if c.IP == "" {
		c.IP = "ip"
		if p, err := exec.LookPath("ip"); err == nil {
			c.IP = p
		}
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = 4096
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = time.Second
	}
	if c.MaxLogFileBytes == 0 {
		c.MaxLogFileBytes = 8 << 20
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 5 * time.Minute
	}
}

// ErrNoSpace is wrapped by a *StateError when the state directory's file
// system is full.
var ErrNoSpace = errors.New("local: no space left in the state directory")

// StateError says that the scheduler could not write its state.
type StateError struct {
	Op   string // what it was doing
	Path string
	Err  error
}

func (e *StateError) Error() string {
	return fmt.Sprintf("local: %s %s: %v", e.Op, e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *StateError) Unwrap() error { return e.Err }

// Is reports ErrNoSpace for a full file system (ENOSPC or EDQUOT).
func (e *StateError) Is(target error) bool {
	return target == ErrNoSpace && (errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT))
}

func stateErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &StateError{Op: op, Path: path, Err: err}
}
