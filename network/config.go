package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
)

const (
	// DefaultNetwork is the name of the network containers join when none is named.
	DefaultNetwork = "hull0"
	// None: a new netns with only lo. The daemon keeps the spec's new network
	// namespace (no path) and does not call Attach.
	None = "none"
	// Host: the host's netns. The daemon removes the network namespace from the spec (native only).
	Host = "host"

	defaultSubnet = "10.88.0.0/16"
	cniVersion    = "1.0.0"
	loopbackName  = "hull-loopback"
)

// Config says where the package keeps its files. Zero fields take the defaults.
type Config struct {
	ConfDir       string   // conflists (<name>.conflist), default /etc/hull/net.d
	PluginDirs    []string // default /usr/lib/cni, /opt/cni/bin
	StateDir      string   // attachment records, netns bind mounts, libcni cache, host-local data dir; default /run/hull/net
	DefaultSubnet string   // subnet of the default network when its conflist is first written, default 10.88.0.0/16
	DefaultBridge string   // bridge of the default network when its conflist is first written, default DefaultName
	DefaultName   string   // name of the default network, default "hull0"
}

// Network describes one conflist.
type Network struct {
	Name    string   `json:"name"`
	Bridge  string   `json:"bridge,omitempty"`
	Subnet  string   `json:"subnet,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	Plugins []string `json:"plugins"` // plugin types in the conflist, in order
	Default bool     `json:"default,omitempty"`
	File    string   `json:"file"` // conflist path
}

// CreateOptions for Manager.Create. Empty Subnet picks a free 10.89.x.0/24;
// empty Gateway is the subnet's first address; empty Bridge is the name when
// it fits in 15 characters, else "hull-" and a hash of the name.
type CreateOptions struct {
	Name, Subnet, Gateway, Bridge string
}

// Manager manages networks (conflists) and attachments of containers to them.
// It is safe for concurrent use.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig

	locks keyedMutex // one per attachment ID: Attach/Detach of one ID are serialized

	mu     sync.Mutex             // guards active and conflist create/remove
	active map[string]activeEntry // attachments (in flight or done), by ID
}

type activeEntry struct {
	network string
	ports   []PortMapping
	// detaching is closed when the Detach in flight (or announced by
	// Releasing) ends; nil when none is. An Attach that wants one of the
	// entry's host ports, or a Remove of its network, waits for it instead
	// of failing: the ports and the network are as good as free.
	detaching chan struct{}
}

// Releasing announces that attachment id is about to be detached (hulld
// detaches a container's attachment once its process has ended, beside
// reporting the exit, so the CNI DEL is off the exit's path). Until the
// Detach that follows ends, whichever way, an Attach that wants one of its
// host ports and a Remove of its network wait for it rather than fail. An
// unknown id is ignored.
func (m *Manager) Releasing(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.markDetachingLocked(id)
}

// markDetachingLocked returns the detaching channel of attachment id,
// making it if needed; nil for an unknown id. m.mu is held.
func (m *Manager) markDetachingLocked(id string) chan struct{} {
	e, ok := m.active[id]
	if !ok {
		return nil
	}
	if e.detaching == nil {
		e.detaching = make(chan struct{})
		m.active[id] = e
	}
	return e.detaching
}

// detachEnded clears the mark that markDetachingLocked made (the entry
// stays when the Detach failed: its ports are still held) and wakes the
// waiters.
func (m *Manager) detachEnded(id string, ch chan struct{}) {
	if ch == nil {
		return
	}
	m.mu.Lock()
	if e, ok := m.active[id]; ok && e.detaching == ch {
		e.detaching = nil
		m.active[id] = e
	}
	m.mu.Unlock()
	close(ch)
}

// errDetaching is what a check returns when only attachments being
// detached stand in the way: wait for ch, then check again.
type errDetaching struct {
	id string
	ch chan struct{}
}

func (e *errDetaching) Error() string {
	return fmt.Sprintf("attachment %q is being detached", e.id)
}

// waitDetached waits for a detach that err (an errDetaching) names, with
// m.mu released; it returns false when err is another error. m.mu is held
// on entry and on return.
func (m *Manager) waitDetached(ctx context.Context, err error) (bool, error) {
	var d *errDetaching
	if !errors.As(err, &d) {
		return false, nil
	}
	m.mu.Unlock()
	defer m.mu.Lock()
	select {
	case <-d.ch:
		return true, nil
	case <-ctx.Done():
		return true, fmt.Errorf("waiting for attachment %q to be detached: %w", d.id, ctx.Err())
	}
}

// New prepares the directories and writes the default network's conflist if
// it is absent. Existing attachment records are loaded so their host ports
// stay reserved and Detach works after a restart.
func New(cfg Config) (*Manager, error) {
	if cfg.ConfDir == "" {
		cfg.ConfDir = "/etc/hull/net.d"
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/hull/net"
	}
	if cfg.DefaultName == "" {
		cfg.DefaultName = DefaultNetwork
	}
	if cfg.DefaultSubnet == "" {
		cfg.DefaultSubnet = defaultSubnet
	}
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = cfg.DefaultName
	}
	if err := validName(cfg.DefaultName); err != nil {
		return nil, fmt.Errorf("default network: %w", err)
	}
	for _, d := range []string{cfg.ConfDir, cfg.StateDir, filepath.Join(cfg.StateDir, "netns"),
		filepath.Join(cfg.StateDir, "attachments"), filepath.Join(cfg.StateDir, "cache"), filepath.Join(cfg.StateDir, "ipam")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	m := &Manager{
		cfg: cfg,
		// An explicit exec: libcni fills in a nil one lazily, racing when
		// two attaches run at once.
		cni: libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.StateDir, "cache"), &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: version.PluginDecoder{},
		}),
		active: map[string]activeEntry{},
	}
	if _, err := os.Stat(m.confFile(cfg.DefaultName)); errors.Is(err, os.ErrNotExist) {
		bridge := cfg.DefaultBridge
		if err := validBridge(bridge); err != nil {
			return nil, fmt.Errorf("default network %s: %w", cfg.DefaultName, err)
		}
		pfx, gw, err := parseSubnet(cfg.DefaultSubnet, "")
		if err != nil {
			return nil, fmt.Errorf("default network %s: %w", cfg.DefaultName, err)
		}
		if err := m.writeConflist(cfg.DefaultName, bridge, pfx, gw); err != nil {
			return nil, err
		}
		slog.Info("network: wrote the default network", "name", cfg.DefaultName, "subnet", pfx, "bridge", bridge, "file", m.confFile(cfg.DefaultName))
	} else if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	recs, err := m.Attachments()
	if err != nil {
		return nil, err
	}
	for _, a := range recs {
		m.active[a.ID] = activeEntry{network: a.Network, ports: a.Ports}
	}
	return m, nil
}

// StateDir is where the manager keeps its state (after defaults).
func (m *Manager) StateDir() string { return m.cfg.StateDir }

// DefaultName is the name of the default network (after defaults).
func (m *Manager) DefaultName() string { return m.cfg.DefaultName }

func (m *Manager) confFile(name string) string {
	return filepath.Join(m.cfg.ConfDir, name+".conflist")
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func validName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: network name %q: use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit", errdefs.ErrInvalidArgument, name)
	}
	if name == None || name == Host {
		return fmt.Errorf("%w: network name %q is reserved (--net %s)", errdefs.ErrInvalidArgument, name, name)
	}
	return nil
}

var bridgeRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)

func validBridge(b string) error {
	if len(b) > 15 {
		return fmt.Errorf("%w: bridge name %q is longer than 15 characters (the kernel's IFNAMSIZ)", errdefs.ErrInvalidArgument, b)
	}
	if !bridgeRE.MatchString(b) {
		return fmt.Errorf("%w: bridge name %q: use letters, digits, '_', '.', '-'", errdefs.ErrInvalidArgument, b)
	}
	return nil
}

// parseSubnet checks an IPv4 subnet and a gateway inside it (default: first address).
func parseSubnet(subnet, gateway string) (netip.Prefix, netip.Addr, error) {
	pfx, err := netip.ParsePrefix(subnet)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: subnet %q: want an IPv4 CIDR such as 10.89.0.0/24", errdefs.ErrInvalidArgument, subnet)
	}
	if !pfx.Addr().Is4() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: subnet %q: only IPv4 subnets are supported", errdefs.ErrInvalidArgument, subnet)
	}
	if pfx.Bits() > 30 || pfx.Bits() < 8 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: subnet %q: prefix length must be between /8 and /30", errdefs.ErrInvalidArgument, subnet)
	}
	if pfx.Masked() != pfx {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: subnet %q has host bits set (did you mean %s?)", errdefs.ErrInvalidArgument, subnet, pfx.Masked())
	}
	if pfx.Addr().IsLoopback() || pfx.Addr().IsMulticast() || pfx.Addr().IsUnspecified() || pfx.Addr().IsLinkLocalUnicast() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: subnet %q is not usable for containers", errdefs.ErrInvalidArgument, subnet)
	}
	var gw netip.Addr
	if gateway == "" {
		gw = pfx.Addr().Next()
	} else {
		gw, err = netip.ParseAddr(gateway)
		if err != nil || !gw.Is4() {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: gateway %q is not an IPv4 address", errdefs.ErrInvalidArgument, gateway)
		}
		if !pfx.Contains(gw) || gw == pfx.Addr() || gw == lastAddr(pfx) {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: gateway %s is not a host address of subnet %s", errdefs.ErrInvalidArgument, gw, pfx)
		}
	}
	return pfx, gw, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// conflist is the JSON written for a network Hull creates.
func conflistJSON(name, bridge string, subnet netip.Prefix, gw netip.Addr) ([]byte, error) {
	list := map[string]any{
		"cniVersion": cniVersion,
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": subnet.String(), "gateway": gw.String()}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
			map[string]any{"type": "firewall"},
		},
	}
	return json.MarshalIndent(list, "", "  ")
}

func (m *Manager) writeConflist(name, bridge string, subnet netip.Prefix, gw netip.Addr) error {
	b, err := conflistJSON(name, bridge, subnet, gw)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.confFile(name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("network %s: %w", name, err)
	}
	return nil
}

// pluginJSON is the part of a plugin's configuration the package reads.
type pluginJSON struct {
	Type   string `json:"type"`
	Bridge string `json:"bridge"`
	IPAM   struct {
		Type    string `json:"type"`
		Subnet  string `json:"subnet"`
		Gateway string `json:"gateway"`
		DataDir string `json:"dataDir"`
		Ranges  [][]struct {
			Subnet  string `json:"subnet"`
			Gateway string `json:"gateway"`
		} `json:"ranges"`
	} `json:"ipam"`
}

// load reads and parses the conflist of a network.
func (m *Manager) load(name string) (*libcni.NetworkConfigList, Network, error) {
	if name == "" {
		name = m.cfg.DefaultName
	}
	if !nameRE.MatchString(name) {
		return nil, Network{}, fmt.Errorf("%w %q", ErrUnknownNetwork, name)
	}
	file := m.confFile(name)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, Network{}, fmt.Errorf("%w %q (no %s; see hull network ls)", ErrUnknownNetwork, name, file)
	}
	if err != nil {
		return nil, Network{}, fmt.Errorf("network %s: %w", name, err)
	}
	return m.parse(name, file, b)
}

func (m *Manager) parse(name, file string, b []byte) (*libcni.NetworkConfigList, Network, error) {
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return nil, Network{}, fmt.Errorf("network %s: %s: %w", name, file, err)
	}
	if list.Name != name {
		return nil, Network{}, fmt.Errorf("network %s: %s names the network %q; the file name must match", name, file, list.Name)
	}
	n := Network{Name: name, File: file, Default: name == m.cfg.DefaultName}
	for _, p := range list.Plugins {
		n.Plugins = append(n.Plugins, p.Network.Type)
		var pj pluginJSON
		if err := json.Unmarshal(p.Bytes, &pj); err != nil {
			continue
		}
		if pj.Type == "bridge" && n.Bridge == "" {
			n.Bridge = pj.Bridge
			if n.Bridge == "" {
				n.Bridge = "cni0" // the bridge plugin's default
			}
		}
		if n.Subnet == "" && pj.IPAM.Type != "" {
			if len(pj.IPAM.Ranges) > 0 && len(pj.IPAM.Ranges[0]) > 0 {
				n.Subnet, n.Gateway = pj.IPAM.Ranges[0][0].Subnet, pj.IPAM.Ranges[0][0].Gateway
			} else {
				n.Subnet, n.Gateway = pj.IPAM.Subnet, pj.IPAM.Gateway
			}
		}
	}
	if n.Gateway == "" && n.Subnet != "" {
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			n.Gateway = p.Masked().Addr().Next().String()
		}
	}
	return list, n, nil
}

// List returns the networks in the configuration directory, sorted by name.
// A conflist that does not parse is skipped with a warning.
func (m *Manager) List(ctx context.Context) ([]Network, error) {
	files, err := filepath.Glob(filepath.Join(m.cfg.ConfDir, "*.conflist"))
	if err != nil {
		return nil, err
	}
	var out []Network
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(f), ".conflist")
		_, n, err := m.load(name)
		if err != nil {
			slog.Warn("network: skipping a conflist", "file", f, "error", err)
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns one network, or ErrUnknownNetwork.
func (m *Manager) Get(ctx context.Context, name string) (Network, error) {
	_, n, err := m.load(name)
	return n, err
}

// Create writes a new bridge network's conflist.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (Network, error) {
	if err := validName(o.Name); err != nil {
		return Network{}, err
	}
	bridge := o.Bridge
	if bridge == "" {
		bridge = o.Name
		if len(bridge) > 15 || !bridgeRE.MatchString(bridge) {
			sum := sha256.Sum256([]byte(o.Name))
			bridge = "hull-" + hex.EncodeToString(sum[:5])
		}
	}
	if err := validBridge(bridge); err != nil {
		return Network{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := os.Stat(m.confFile(o.Name)); err == nil {
		return Network{}, fmt.Errorf("network %q: %w", o.Name, errdefs.ErrAlreadyExists)
	}
	existing, err := m.List(ctx)
	if err != nil {
		return Network{}, err
	}
	hostNets := hostSubnets(existing)
	var pfx netip.Prefix
	var gw netip.Addr
	if o.Subnet == "" {
		if o.Gateway != "" {
			return Network{}, fmt.Errorf("%w: a gateway needs a subnet", errdefs.ErrInvalidArgument)
		}
		pfx, err = pickSubnet(existing, hostNets)
		if err != nil {
			return Network{}, err
		}
		gw = pfx.Addr().Next()
	} else {
		if pfx, gw, err = parseSubnet(o.Subnet, o.Gateway); err != nil {
			return Network{}, err
		}
		for _, n := range existing {
			if p, err := netip.ParsePrefix(n.Subnet); err == nil && overlaps(p, pfx) {
				return Network{}, fmt.Errorf("%w: subnet %s overlaps %s of network %s", errdefs.ErrInvalidArgument, pfx, p, n.Name)
			}
		}
		for _, h := range hostNets {
			if overlaps(h.prefix, pfx) {
				return Network{}, fmt.Errorf("%w: subnet %s overlaps %s on host interface %s", errdefs.ErrInvalidArgument, pfx, h.prefix, h.iface)
			}
		}
	}
	for _, n := range existing {
		if n.Bridge == bridge {
			return Network{}, fmt.Errorf("%w: bridge %s is already used by network %s", errdefs.ErrInvalidArgument, bridge, n.Name)
		}
	}
	if err := m.writeConflist(o.Name, bridge, pfx, gw); err != nil {
		return Network{}, err
	}
	_, n, err := m.load(o.Name)
	return n, err
}

type hostNet struct {
	iface  string
	prefix netip.Prefix
}

// hostSubnets lists the IPv4 subnets on host interfaces, leaving out the
// bridges of Hull's networks (they carry the networks' own gateways).
func hostSubnets(networks []Network) []hostNet {
	skip := map[string]bool{}
	for _, n := range networks {
		skip[n.Bridge] = true
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []hostNet
	for _, ifc := range ifs {
		if skip[ifc.Name] {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() {
				continue
			}
			ones, _ := ipn.Mask.Size()
			addr, _ := netip.AddrFromSlice(ipn.IP.To4())
			out = append(out, hostNet{iface: ifc.Name, prefix: netip.PrefixFrom(addr, ones).Masked()})
		}
	}
	return out
}

// pickSubnet finds the first free 10.89.x.0/24 (x = 0..255), as Podman does.
func pickSubnet(existing []Network, hostNets []hostNet) (netip.Prefix, error) {
	var taken []netip.Prefix
	for _, n := range existing {
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			taken = append(taken, p)
		}
	}
	for _, h := range hostNets {
		taken = append(taken, h.prefix)
	}
next:
	for x := 0; x < 256; x++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(x), 0}), 24)
		for _, t := range taken {
			if overlaps(p, t) {
				continue next
			}
		}
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("%w: no free subnet in 10.89.0.0/16; give one with --subnet", errdefs.ErrResourceExhausted)
}

// Remove deletes a network's conflist, its bridge (when no interface is left
// on it) and its IPAM allocations. The default network cannot be removed, nor
// a network with attachments.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n Network
	for {
		var err error
		if _, n, err = m.load(name); err != nil {
			return err
		}
		if n.Default {
			return fmt.Errorf("%w: %s is the default network and cannot be removed", errdefs.ErrInvalidArgument, name)
		}
		var users []string
		var leaving *errDetaching
		for id, a := range m.active {
			if a.network != name {
				continue
			}
			if a.detaching != nil {
				leaving = &errDetaching{id: id, ch: a.detaching}
			} else {
				users = append(users, id)
			}
		}
		if len(users) == 0 && leaving == nil {
			break
		}
		if len(users) > 0 {
			sort.Strings(users)
			return fmt.Errorf("%w: %s has %d attachment(s): %s", ErrNetworkInUse, name, len(users), strings.Join(users, ", "))
		}
		// One is on its way out: wait for it, then look again.
		if _, err := m.waitDetached(ctx, leaving); err != nil {
			return err
		}
	}
	if err := os.Remove(n.File); err != nil {
		return fmt.Errorf("network %s: %w", name, err)
	}
	if err := os.RemoveAll(filepath.Join(m.cfg.StateDir, "ipam", name)); err != nil {
		slog.Warn("network: removing IPAM data", "network", name, "error", err)
	}
	if n.Bridge != "" {
		removeBridge(n.Bridge)
	}
	return nil
}

// removeBridge deletes a bridge left by the bridge plugin if nothing is attached to it.
func removeBridge(name string) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return
	}
	links, err := netlink.LinkList()
	if err != nil {
		return
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == link.Attrs().Index {
			slog.Warn("network: bridge still has interfaces, kept", "bridge", name, "interface", l.Attrs().Name)
			return
		}
	}
	if err := netlink.LinkDel(link); err != nil {
		slog.Warn("network: deleting bridge", "bridge", name, "error", err)
	}
}

// writeFileAtomic writes a file through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// keyedMutex serializes work per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
