package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	agentapi "github.com/hullproject/hull/agent/api"
)

// nicWait bounds the wait for a NIC that the kernel has not probed yet.
var nicWait = 5 * time.Second

// ConfigureNetwork gives the guest the container's network as the host's
// network namespace has it: interfaces found by MAC, renamed, their MTU and
// addresses set and brought up, lo up, then the routes in order. The
// container then runs in the guest's network namespace (the VM is the
// sandbox). Addresses and routes are replaced, so a second call with the
// same request changes nothing.
func (s *Server) ConfigureNetwork(ctx context.Context, r *agentapi.ConfigureNetworkRequest) (*agentapi.Empty, error) {
	if err := loopbackUp(); err != nil {
		return nil, err
	}
	for _, ifc := range r.Interfaces {
		if err := configureInterface(ctx, ifc); err != nil {
			return nil, err
		}
	}
	for _, rt := range r.Routes {
		if err := addRoute(rt); err != nil {
			return nil, err
		}
	}
	if len(r.Routes) > 0 {
		Mark("network: routes added")
	}
	// A container create comes next: prepare for it while the host
	// prepares the request.
	warmUp()
	return &agentapi.Empty{}, nil
}

// loopbackUp brings lo up with two ioctls rather than netlink: with --net
// none that is all ConfigureNetwork does, and under TCG the first run of
// the netlink package's request and link-parsing code cost ~100 ms of the
// guest's first container create; the ioctl path is a few syscalls.
func loopbackUp() error {
	if err := setUp("lo"); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	return nil
}

// setUp brings the interface called name up (SIOCGIFFLAGS, SIOCSIFFLAGS).
// The NIC's way is lo's: the agent brought lo up by the time a request
// comes, so this code is translated already under TCG, and the guest's
// configuration of a NIC needs no netlink in the common case (one IPv4
// address, IPv4 routes through a gateway), whose first run cost ~30-40 ms
// of every cold start.
func setUp(name string) error {
	return withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("get flags: %w", err)
		}
		flags := ifr.Uint16()
		if flags&unix.IFF_UP != 0 {
			return nil
		}
		ifr.SetUint16(flags | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		return nil
	})
}

// setMTU sets the MTU of the interface called name, when it differs
// (SIOCGIFMTU, SIOCSIFMTU).
func setMTU(name string, mtu int) error {
	return withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
			return err
		}
		if int(ifr.Uint32()) == mtu {
			return nil
		}
		ifr.SetUint32(uint32(mtu))
		return unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr)
	})
}

// setInet4 gives the interface called name the IPv4 address a as its
// primary address (SIOCSIFADDR, SIOCSIFNETMASK). The kernel records it as
// netlink's RTM_NEWADDR would: labelled with the interface's name, scope
// global, permanent, the broadcast address derived from the mask. The
// same address and mask again change nothing.
func setInet4(name string, a *net.IPNet) error {
	ip, mask := a.IP.To4(), net.IP(a.Mask).To4()
	if ip == nil || mask == nil {
		return fmt.Errorf("not an IPv4 address: %w", errdefs.ErrInvalidArgument)
	}
	return withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := ifr.SetInet4Addr(ip); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
			return fmt.Errorf("set address: %w", err)
		}
		if err := ifr.SetInet4Addr(mask); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
			return fmt.Errorf("set netmask: %w", err)
		}
		return nil
	})
}

// withIfreq runs fn with an AF_INET socket and an ifreq naming the
// interface name: the interface ioctls (flags, index) the agent uses
// instead of netlink.
func withIfreq(name string, fn func(fd int, ifr *unix.Ifreq) error) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	return fn(fd, ifr)
}

func configureInterface(ctx context.Context, ifc *agentapi.Interface) error {
	mac, err := net.ParseMAC(ifc.Mac)
	if err != nil {
		return fmt.Errorf("interface %q: MAC %q: %w", ifc.Name, ifc.Mac, errdefs.ErrInvalidArgument)
	}
	var addrs []*netlink.Addr
	hasV6 := false
	for _, a := range ifc.Addresses {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("interface %q: address %q: %w", ifc.Name, a, errdefs.ErrInvalidArgument)
		}
		if addr.IP.To4() == nil {
			hasV6 = true
			// The host's veth holds the address too, but never sees the
			// guest's packets: skip duplicate address detection.
			addr.Flags |= unix.IFA_F_NODAD
		}
		addrs = append(addrs, addr)
	}
	link, err := linkByMAC(ctx, mac)
	if err != nil {
		return fmt.Errorf("interface %q: %w", ifc.Name, err)
	}
	Mark("network: NIC found")
	// A NIC nobody brought up yet (a fresh guest's) needs no netlink
	// request to be down.
	if up, err := isUp(link.Attrs().Name); err != nil || up {
		if err := netlink.LinkSetDown(link); err != nil {
			return fmt.Errorf("interface %s down: %w", link.Attrs().Name, err)
		}
	}
	Mark("network: NIC down")
	if ifc.Name != "" && ifc.Name != link.Attrs().Name {
		if err := rename(link, ifc.Name); err != nil {
			return err
		}
	}
	if ifc.Mtu > 0 {
		if err := setMTU(link.Attrs().Name, int(ifc.Mtu)); err != nil {
			return fmt.Errorf("interface %s: MTU %d: %w", link.Attrs().Name, ifc.Mtu, err)
		}
	}
	Mark("network: NIC renamed, MTU set")
	if !hasV6 {
		// No IPv6 in the request: no IPv6 on the NIC, as Docker does for
		// IPv4-only networks. Its link-local address, DAD, MLD and router
		// solicitation run in the kernel's workqueues right when the
		// container is created and started: ~40 ms of a cold start under
		// TCG. (A kernel without IPv6 has no such file.)
		p := "/proc/sys/net/ipv6/conf/" + link.Attrs().Name + "/disable_ipv6"
		if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("interface %s: disable IPv6: %w", link.Attrs().Name, err)
		}
	}
	Mark("network: IPv6 off")
	ioctlV4 := false
	for _, a := range addrs {
		var err error
		if a.IP.To4() != nil && !ioctlV4 {
			// The first IPv4 address by ioctls (see setInet4).
			ioctlV4 = true
			err = setInet4(link.Attrs().Name, a.IPNet)
		} else {
			err = netlink.AddrReplace(link, a)
		}
		if err != nil {
			return fmt.Errorf("interface %s: address %s: %w", link.Attrs().Name, a.IPNet, err)
		}
	}
	Mark("network: NIC configured")
	if err := setUp(link.Attrs().Name); err != nil {
		return fmt.Errorf("interface %s up: %w", link.Attrs().Name, err)
	}
	Mark("network: NIC up")
	return nil
}

// linkByMAC finds the link with hardware address mac, waiting up to
// nicWait for it to appear. The lookup is by ioctls (findByMAC), and the
// returned Link carries only the index and name, which is all netlink's
// setters use: a netlink link dump (vishvananda/netlink's LinkList, and
// even the standard library's net.Interfaces) runs the kernel's whole
// link-attribute encoding and its parsing for the first time, 50-130 ms
// of a guest's first network setup under TCG.
func linkByMAC(ctx context.Context, mac net.HardwareAddr) (netlink.Link, error) {
	deadline := time.Now().Add(nicWait)
	for try := 1; ; try++ {
		l, err := findByMAC(mac)
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		if l != nil {
			if try > 1 {
				Mark(fmt.Sprintf("network: NIC appeared (lookup %d)", try))
			}
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no network interface with MAC %s in the guest: %w", mac, errdefs.ErrNotFound)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ifreqHW is struct ifreq with ifr_hwaddr (a struct sockaddr).
type ifreqHW struct {
	name   [unix.IFNAMSIZ]byte
	family uint16
	data   [22]byte
}

// findByMAC walks the network namespace's interfaces by index
// (SIOCGIFNAME) and returns the one whose hardware address
// (SIOCGIFHWADDR) is mac, or nil. Indexes are handed out in order, so the
// walk stops after a run of free ones.
func findByMAC(mac net.HardwareAddr) (netlink.Link, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	for idx, free := 1, 0; free < 64; idx++ {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return nil, err
		}
		ifr.SetUint32(uint32(idx))
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
			if errors.Is(err, unix.ENODEV) {
				free++
				continue
			}
			return nil, fmt.Errorf("interface %d: %w", idx, err)
		}
		free = 0
		var hw ifreqHW
		copy(hw.name[:], ifr.Name())
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCGIFHWADDR, uintptr(unsafe.Pointer(&hw))); errno != 0 {
			continue // gone meanwhile
		}
		if len(mac) <= len(hw.data) && bytes.Equal(hw.data[:len(mac)], mac) {
			return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx, Name: ifr.Name()}}, nil
		}
	}
	return nil, nil
}

// ifIndex is the index of the interface called name (SIOCGIFINDEX).
func ifIndex(name string) (idx int, err error) {
	err = withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return err
		}
		idx = int(ifr.Uint32())
		return nil
	})
	return idx, err
}

// isUp says whether the interface called name is up (SIOCGIFFLAGS).
func isUp(name string) (up bool, err error) {
	err = withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		up = ifr.Uint16()&unix.IFF_UP != 0
		return nil
	})
	return up, err
}

// rename gives link the name name, first moving away another link that has
// it (two NICs whose kernel names are each other's host names).
func rename(link netlink.Link, name string) error {
	if other, err := ifIndex(name); err == nil && other != link.Attrs().Index {
		tmp := fmt.Sprintf("hulltmp%d", other)
		o := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: other, Name: name}}
		if err := netlink.LinkSetDown(o); err != nil {
			return fmt.Errorf("interface %s down: %w", name, err)
		}
		if err := netlink.LinkSetName(o, tmp); err != nil {
			return fmt.Errorf("rename %s to %s: %w", name, tmp, err)
		}
	}
	if err := netlink.LinkSetName(link, name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", link.Attrs().Name, name, err)
	}
	link.Attrs().Name = name
	return nil
}

func addRoute(r *agentapi.Route) error {
	route := &netlink.Route{Scope: netlink.Scope(r.Scope), Priority: int(r.Metric), Family: int(r.Family)}
	if r.Device != "" {
		idx, err := ifIndex(r.Device)
		if err != nil {
			return fmt.Errorf("route %s: device %q: %w", routeString(r), r.Device, errdefs.ErrNotFound)
		}
		route.LinkIndex = idx
	}
	if r.Destination != "" {
		_, dst, err := net.ParseCIDR(r.Destination)
		if err != nil {
			return fmt.Errorf("route %s: destination: %w", routeString(r), errdefs.ErrInvalidArgument)
		}
		route.Dst = dst
	}
	if r.Gateway != "" {
		if route.Gw = net.ParseIP(r.Gateway); route.Gw == nil {
			return fmt.Errorf("route %s: gateway: %w", routeString(r), errdefs.ErrInvalidArgument)
		}
	}
	if r.Source != "" {
		if route.Src = net.ParseIP(r.Source); route.Src == nil {
			return fmt.Errorf("route %s: source: %w", routeString(r), errdefs.ErrInvalidArgument)
		}
	}
	if route.Family == 0 {
		ip := route.Gw
		if route.Dst != nil {
			ip = route.Dst.IP
		}
		route.Family = unix.AF_INET
		if ip != nil && ip.To4() == nil {
			route.Family = unix.AF_INET6
		}
	}
	if ioctlRoute(r, route) {
		// An IPv4 route through a gateway (CNI's default route): by
		// ioctl, which the kernel records as RouteReplace would (main
		// table, protocol boot, scope universe, the same metric).
		if err := addRoute4(r.Device, route); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("route %s: %w", routeString(r), err)
		}
		return nil
	}
	if err := netlink.RouteReplace(route); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("route %s: %w", routeString(r), err)
	}
	return nil
}

func routeString(r *agentapi.Route) string {
	d := r.Destination
	if d == "" {
		d = "default"
	}
	if r.Gateway != "" {
		d += " via " + r.Gateway
	}
	if r.Device != "" {
		d += " dev " + r.Device
	}
	return d
}

// ioctlRoute says whether route can be added by SIOCADDRT with the same
// result as netlink: IPv4, through an IPv4 gateway, on a device, scope
// universe, no preferred source, a metric the ioctl's 16 bits hold.
func ioctlRoute(r *agentapi.Route, route *netlink.Route) bool {
	return route.Family == unix.AF_INET && r.Device != "" && route.Gw.To4() != nil &&
		route.Scope == netlink.SCOPE_UNIVERSE && route.Src == nil && route.Priority >= 0 && route.Priority < 1<<15-1 &&
		(route.Dst == nil || route.Dst.IP.To4() != nil)
}

// rtentry is the kernel's struct rtentry (SIOCADDRT) on 64-bit Linux.
type rtentry struct {
	pad1    uintptr
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uintptr
	pad4    uintptr
	metric  int16
	dev     *byte
	mtu     uintptr
	window  uintptr
	irtt    uint16
}

// addRoute4 adds an IPv4 route through a gateway on the device called
// dev by SIOCADDRT. The ioctl's metric is netlink's priority plus one.
func addRoute4(dev string, route *netlink.Route) error {
	devp, err := unix.BytePtrFromString(dev)
	if err != nil {
		return err
	}
	rt := rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY, metric: int16(route.Priority + 1), dev: devp}
	rt.dst.Family, rt.gateway.Family, rt.genmask.Family = unix.AF_INET, unix.AF_INET, unix.AF_INET
	copy(rt.gateway.Addr[:], route.Gw.To4())
	if route.Dst != nil {
		copy(rt.dst.Addr[:], route.Dst.IP.To4())
		copy(rt.genmask.Addr[:], net.IP(route.Dst.Mask).To4())
		if ones, bits := route.Dst.Mask.Size(); bits == 32 && ones == 32 {
			rt.flags |= unix.RTF_HOST
		}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt))); errno != 0 {
		return errno
	}
	runtime.KeepAlive(devp)
	return nil
}
