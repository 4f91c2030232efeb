package shim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/plugins/pkg/ns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/vm"
)

// The vm mode's network, Kata's tcfilter model. hulld gives the container a
// network namespace (its path in the spec) holding a veth from CNI. The VM
// takes that veth's place: for each interface the shim creates a tap in the
// namespace and mirrors every frame between the two with tc (an ingress
// qdisc on each, a match-all u32 filter with a mirred egress redirect to the
// other). QEMU gets the tap's fd and gives the guest a virtio NIC with the
// veth's MAC; the agent then sets the veth's MTU, addresses and routes on it
// (ConfigureNetwork). The container runs in the guest's network namespace.
// The namespace itself is hulld's: the shim only ever removes what it added.

// ErrHostNetwork: the spec has no network namespace (host networking),
// which a container in its own VM cannot have.
var ErrHostNetwork = fmt.Errorf("the vm runtime cannot join the host's network namespace (--net host): the container runs on its own guest kernel; use a network or --net none: %w", errdefs.ErrInvalidArgument)

// tapSuffix ends the name of every tap the shim makes ("tap0_hull").
const tapSuffix = "_hull"

// vmNetMode says what the spec asks of the network.
type vmNetMode int

const (
	// vmNetNone: a new network namespace with only lo (no path).
	vmNetNone vmNetMode = iota
	// vmNetJoin: the namespace at a path, whose interfaces the VM takes.
	vmNetJoin
)

// specNetwork returns the spec's network mode and, for vmNetJoin, the
// namespace's path; ErrHostNetwork when the spec has no network namespace.
func specNetwork(s *specs.Spec) (vmNetMode, string, error) {
	if s.Linux != nil {
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.NetworkNamespace {
				continue
			}
			if n.Path == "" {
				return vmNetNone, "", nil
			}
			return vmNetJoin, n.Path, nil
		}
	}
	return 0, "", ErrHostNetwork
}

// vmNetwork is what the shim set up in one network namespace.
type vmNetwork struct {
	nsPath     string
	nsID       [2]uint64 // device and inode of the namespace taken over
	persistent bool
	links      []*vmLink
	routes     []*agentapi.Route
}

// vmLink is one interface the VM took over.
type vmLink struct {
	veth      string
	mac       string
	mtu       int
	addrs     []string
	tap       string
	tapFile   *os.File
	qdiscVeth bool // the ingress qdisc on the veth is the shim's
}

// setupVMNetwork takes over the interfaces of the namespace at nsPath. The
// taps are held only by the fds the hypervisor gets, unless persistent
// (for a hypervisor that opens them by name): then the shim holds none and
// teardown deletes them. On error nothing it added stays.
func setupVMNetwork(nsPath string, persistent bool) (_ *vmNetwork, err error) {
	n := &vmNetwork{nsPath: nsPath, persistent: persistent}
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return nil, fmt.Errorf("vm network: the spec's network namespace %s: %w", nsPath, errors.Join(errdefs.ErrNotFound, err))
	}
	n.nsID = [2]uint64{st.Dev, st.Ino}
	defer func() {
		if err != nil {
			_ = n.teardown()
		}
	}()
	err = ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		if err := removeStale(); err != nil {
			return err
		}
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			a := l.Attrs()
			if a.Flags&net.FlagLoopback != 0 || l.Type() == "tuntap" || len(a.HardwareAddr) != 6 {
				continue
			}
			if err := n.takeOver(l, len(n.links)); err != nil {
				return fmt.Errorf("interface %s: %w", a.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vm network in %s: %w", nsPath, err)
	}
	return n, nil
}

// takeOver records link's addresses and routes, makes its tap and mirrors
// the two. It runs in the namespace.
func (n *vmNetwork) takeOver(link netlink.Link, i int) error {
	a := link.Attrs()
	vl := &vmLink{veth: a.Name, mac: a.HardwareAddr.String(), mtu: a.MTU}
	n.links = append(n.links, vl)
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	for _, ad := range addrs {
		if ad.Scope == unix.RT_SCOPE_LINK || ad.IP.IsLinkLocalUnicast() {
			continue // the guest makes its own link-local ones
		}
		vl.addrs = append(vl.addrs, ad.IPNet.String())
	}
	routes, err := netlink.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	var direct, viaGw []*agentapi.Route
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_KERNEL {
			continue // the guest's kernel adds these with the addresses
		}
		if r.Dst != nil && (r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast()) {
			continue
		}
		ar := &agentapi.Route{Device: a.Name, Scope: uint32(r.Scope), Metric: uint32(r.Priority), Family: uint32(r.Family)}
		if r.Dst != nil && !isDefaultRoute(r.Dst) {
			ar.Destination = r.Dst.String()
		}
		if r.Gw != nil {
			ar.Gateway = r.Gw.String()
		}
		if r.Src != nil {
			ar.Source = r.Src.String()
		}
		if r.Gw == nil {
			direct = append(direct, ar)
		} else {
			viaGw = append(viaGw, ar)
		}
	}
	// A gateway must be reachable when its route is added.
	n.routes = append(n.routes, append(direct, viaGw...)...)

	tap := &netlink.Tuntap{
		LinkAttrs:  netlink.LinkAttrs{Name: fmt.Sprintf("tap%d%s", i, tapSuffix)},
		Mode:       netlink.TUNTAP_MODE_TAP,
		Flags:      netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
		Queues:     1,
		NonPersist: !n.persistent, // else the tap goes when QEMU (its last holder) does
	}
	if err := netlink.LinkAdd(tap); err != nil {
		return fmt.Errorf("create tap %s: %w", tap.Name, err)
	}
	vl.tap, vl.tapFile = tap.Name, tap.Fds[0]
	if n.persistent {
		// A single-queue tap is busy while open: the hypervisor opens it.
		vl.tapFile.Close()
		vl.tapFile = nil
	}
	tl, err := netlink.LinkByName(tap.Name)
	if err != nil {
		return fmt.Errorf("tap %s: %w", tap.Name, err)
	}
	if err := netlink.LinkSetMTU(tl, a.MTU); err != nil {
		return fmt.Errorf("tap %s: MTU %d: %w", tap.Name, a.MTU, err)
	}
	if err := netlink.LinkSetUp(tl); err != nil {
		return fmt.Errorf("tap %s up: %w", tap.Name, err)
	}
	if err := addIngress(a.Index); err != nil {
		return fmt.Errorf("ingress qdisc on %s: %w", a.Name, err)
	}
	vl.qdiscVeth = true
	if err := addIngress(tl.Attrs().Index); err != nil {
		return fmt.Errorf("ingress qdisc on %s: %w", tap.Name, err)
	}
	if err := redirect(a.Index, tl.Attrs().Index); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", a.Name, tap.Name, err)
	}
	if err := redirect(tl.Attrs().Index, a.Index); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", tap.Name, a.Name, err)
	}
	return nil
}

// isDefaultRoute says whether dst is 0.0.0.0/0 or ::/0 (netlink reports
// the default route so).
func isDefaultRoute(dst *net.IPNet) bool {
	ones, _ := dst.Mask.Size()
	return ones == 0 && dst.IP.IsUnspecified()
}

func ingressQdisc(index int) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS,
	}}
}

func addIngress(index int) error {
	if err := netlink.QdiscAdd(ingressQdisc(index)); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("an ingress qdisc is already there (another vm runtime?): %w", errdefs.ErrAlreadyExists)
		}
		return err
	}
	return nil
}

// redirect sends every frame entering from to the egress of to: a
// match-all u32 filter with a mirred egress redirect.
func redirect(from, to int) error {
	return netlink.FilterAdd(&netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from, Parent: netlink.MakeHandle(0xffff, 0),
			Priority: 1, Protocol: unix.ETH_P_ALL,
		},
		// No selector: match all.
		Actions: []netlink.Action{netlink.NewMirredAction(to)},
	})
}

// devices are the VM's NICs.
func (n *vmNetwork) devices() []vm.NetDevice {
	var out []vm.NetDevice
	for _, l := range n.links {
		out = append(out, vm.NetDevice{Tap: l.tapFile, TapName: l.tap, NetNS: n.nsPath, MAC: l.mac, MTU: l.mtu})
	}
	return out
}

// request is the agent's ConfigureNetwork request.
func (n *vmNetwork) request() *agentapi.ConfigureNetworkRequest {
	r := &agentapi.ConfigureNetworkRequest{Routes: n.routes}
	for _, l := range n.links {
		r.Interfaces = append(r.Interfaces, &agentapi.Interface{Name: l.veth, Mac: l.mac, Mtu: uint32(l.mtu), Addresses: l.addrs})
	}
	return r
}

// closeTaps closes the shim's fds of the taps (QEMU holds its own once it
// started); without a holder a tap is gone.
func (n *vmNetwork) closeTaps() {
	for _, l := range n.links {
		if l.tapFile != nil {
			l.tapFile.Close()
			l.tapFile = nil
		}
	}
}

// teardown removes the qdiscs (and so the filters) and the taps the shim
// added. A namespace that is already gone leaves nothing to remove.
func (n *vmNetwork) teardown() error {
	n.closeTaps()
	if id, ok := nsIdentity(n.nsPath); !ok || id != n.nsID {
		// Gone (hulld detached it first), or another namespace took the
		// path: what the shim added went with its namespace.
		return nil
	}
	err := ns.WithNetNSPath(n.nsPath, func(ns.NetNS) error {
		var errs []error
		for _, l := range n.links {
			if l.qdiscVeth {
				if link, err := netlink.LinkByName(l.veth); err == nil {
					if err := netlink.QdiscDel(ingressQdisc(link.Attrs().Index)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
						errs = append(errs, fmt.Errorf("remove the ingress qdisc of %s: %w", l.veth, err))
					}
				}
				l.qdiscVeth = false
			}
			if l.tap != "" {
				if err := removeTap(l.tap); err != nil {
					errs = append(errs, err)
				}
				l.tap = ""
			}
		}
		return errors.Join(errs...)
	})
	return ignoreGoneNS(err)
}

// nsIdentity returns the device and inode of the namespace file at path.
func nsIdentity(path string) ([2]uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return [2]uint64{}, false
	}
	return [2]uint64{st.Dev, st.Ino}, true
}

// ignoreGoneNS drops the error of a namespace that is no longer there (its
// path removed, or no longer a namespace mount: hulld detached it first).
func ignoreGoneNS(err error) error {
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	if errors.As(err, &notExist) || errors.As(err, &notNS) {
		return nil
	}
	return err
}

func removeTap(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil // gone with QEMU
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove tap %s: %w", name, err)
	}
	return nil
}

// removeStale removes, in the current namespace, what a shim that died
// left: its taps (gone already when QEMU held the last fd) and the ingress
// qdiscs whose filters redirect to one of them or to a link that is gone.
// hulld removes the whole namespace anyway; this lets another vm shim take
// over a namespace that outlived one (containerd with a netns path).
func removeStale() error {
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	var taps []int
	for _, l := range links {
		if strings.HasSuffix(l.Attrs().Name, tapSuffix) && l.Type() == "tuntap" {
			taps = append(taps, l.Attrs().Index)
		}
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if slices.Contains(taps, a.Index) {
			continue
		}
		filters, err := netlink.FilterList(l, netlink.MakeHandle(0xffff, 0))
		if err != nil || len(filters) == 0 {
			continue
		}
		stale := false
		for _, f := range filters {
			u, ok := f.(*netlink.U32)
			if !ok {
				continue
			}
			for _, act := range u.Actions {
				if m, ok := act.(*netlink.MirredAction); ok && (slices.Contains(taps, m.Ifindex) || !linkExists(links, m.Ifindex)) {
					stale = true
				}
			}
		}
		if stale {
			if err := netlink.QdiscDel(ingressQdisc(a.Index)); err != nil {
				errs = append(errs, fmt.Errorf("remove the stale ingress qdisc of %s: %w", a.Name, err))
			}
		}
	}
	for _, l := range links {
		if slices.Contains(taps, l.Attrs().Index) {
			if err := removeTap(l.Attrs().Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func linkExists(links []netlink.Link, index int) bool {
	return slices.ContainsFunc(links, func(l netlink.Link) bool { return l.Attrs().Index == index })
}
