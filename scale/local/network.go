package local

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Network says how instances are networked.
type Network int

const (
	// HostNetwork (the default) shares the host's network namespace: each
	// web instance listens on its own port of 127.0.0.1.
	HostNetwork Network = iota
	// IsolatedNetwork gives each instance its own network namespace,
	// linked to the host by a veth pair on a /30 of Config.Subnet. An
	// instance's loopback is its own, and it reaches the host (and, through
	// the host's routing, other instances) only by address. There is no
	// NAT: instances reach nothing beyond this machine unless the host
	// forwards and masquerades for Config.Subnet. Needs iproute2's ip.
	IsolatedNetwork
)

// defaultSubnet is where IsolatedNetwork takes its /30s when Config.Subnet
// is not set.
var defaultSubnet = netip.MustParsePrefix("10.213.0.0/16")

// netns sets up and tears down instances' network namespaces.
type netns struct {
	ip     string       // the ip binary
	subnet netip.Prefix // a /30 per instance
	prefix string       // of namespace names, unique to the state dir
	tag    string       // of veth names, from the same hash
	// mu serializes set-up and tear-down: concurrent `ip netns add` race
	// when they first make /run/netns a shared mount.
	mu *sync.Mutex
}

func newNetns(ipBin string, subnet netip.Prefix, stateDir string) netns {
	h := stateHash(stateDir)
	return netns{ip: ipBin, subnet: subnet.Masked(), prefix: "slipway-" + h + "-", tag: h[:4], mu: new(sync.Mutex)}
}

// veth returns the names of the host's and the instance's ends of slot's
// veth pair (at most 11 characters; the kernel allows 15).
func (n netns) veth(slot int) (host, inst string) {
	return fmt.Sprintf("s%s%xh", n.tag, slot), fmt.Sprintf("s%s%xc", n.tag, slot)
}

// slots is how many /30s the subnet holds (slot 0 is not used).
func (n netns) slots() int {
	bits := n.subnet.Addr().BitLen() - n.subnet.Bits() - 2
	if bits <= 0 {
		return 0
	}
	return min(1<<bits, 1<<20)
}

// addrs returns the host's and the instance's address of slot.
func (n netns) addrs(slot int) (host, inst netip.Addr) {
	b := n.subnet.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(slot) * 4
	host = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v + 1)})
	inst = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v + 2)})
	return host, inst
}

func (n netns) name(id string) string { return n.prefix + id }

// Path is the namespace file runc joins.
func (n netns) path(id string) string { return filepath.Join("/run/netns", n.name(id)) }

func (n netns) run(args ...string) error {
	out, err := exec.Command(n.ip, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// create makes the instance's namespace with its end of a veth pair, unless
// it exists already (a restart).
func (n netns) create(id string, slot int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if isNetns(n.path(id)) {
		return nil
	}
	n.removeLocked(id, slot) // anything half made
	host, inst := n.addrs(slot)
	hv, cv := n.veth(slot)
	steps := [][]string{
		{"netns", "add", n.name(id)},
		{"link", "add", hv, "type", "veth", "peer", "name", cv},
		{"link", "set", cv, "netns", n.name(id)},
		{"addr", "add", host.String() + "/30", "dev", hv},
		{"link", "set", hv, "up"},
		{"-n", n.name(id), "addr", "add", inst.String() + "/30", "dev", cv},
		{"-n", n.name(id), "link", "set", cv, "up"},
		{"-n", n.name(id), "link", "set", "lo", "up"},
		{"-n", n.name(id), "route", "add", "default", "via", host.String()},
	}
	for _, s := range steps {
		if err := n.run(s...); err != nil {
			n.removeLocked(id, slot)
			return err
		}
	}
	return nil
}

// isNetns reports whether p is a mounted network namespace.
func isNetns(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// remove deletes the instance's namespace and veth pair.
func (n netns) remove(id string, slot int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeLocked(id, slot)
}

func (n netns) removeLocked(id string, slot int) {
	if _, err := os.Stat(n.path(id)); err == nil {
		if n.run("netns", "del", n.name(id)) != nil {
			_ = unix.Unmount(n.path(id), unix.MNT_DETACH)
			_ = os.Remove(n.path(id))
		}
	}
	if slot > 0 {
		hv, _ := n.veth(slot)
		if _, err := os.Stat(filepath.Join("/sys/class/net", hv)); err == nil {
			_ = n.run("link", "del", hv)
		}
	}
}

// list returns the instance ids that have a namespace of this scheduler.
func (n netns) list() []string {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var out []string
	for _, e := range ents {
		if id, ok := strings.CutPrefix(e.Name(), n.prefix); ok {
			out = append(out, id)
		}
	}
	return out
}
