package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
}

func newNetns(ipBin string, subnet netip.Prefix, stateDir string) netns {
	sum := sha256.Sum256([]byte(filepath.Clean(stateDir)))
	return netns{ip: ipBin, subnet: subnet.Masked(), prefix: "slipway-" + hex.EncodeToString(sum[:4]) + "-"}
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
	if _, err := os.Stat(n.path(id)); err == nil {
		return nil
	}
	host, inst := n.addrs(slot)
	hv, cv := fmt.Sprintf("sw%xh", slot), fmt.Sprintf("sw%xc", slot)
	_ = n.run("link", "del", hv) // a leftover of an earlier instance in this slot
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
			n.remove(id, slot)
			return err
		}
	}
	return nil
}

// remove deletes the instance's namespace and veth pair.
func (n netns) remove(id string, slot int) {
	if _, err := os.Stat(n.path(id)); err == nil {
		_ = n.run("netns", "del", n.name(id))
	}
	if slot > 0 {
		_ = n.run("link", "del", fmt.Sprintf("sw%xh", slot))
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
