package container

import (
	"fmt"
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// moveNetDevices moves the host network devices of linux.netDevices into
// the network namespace of pid, renames them, restores their permanent
// addresses there (moving a device clears them) and sets them up, ready
// for the process.
func moveNetDevices(pid int, devs map[string]specs.LinuxNetDevice) error {
	if len(devs) == 0 {
		return nil
	}
	target, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("linux.netDevices: container network namespace: %w", err)
	}
	defer target.Close()
	h, err := netlink.NewHandleAt(target)
	if err != nil {
		return fmt.Errorf("linux.netDevices: %w", err)
	}
	defer h.Close()
	for name, d := range devs {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("linux.netDevices[%q]: %w", name, err)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("linux.netDevices[%q]: addresses: %w", name, err)
		}
		if err := netlink.LinkSetNsFd(link, int(target)); err != nil {
			return fmt.Errorf("linux.netDevices[%q]: move into the container: %w", name, err)
		}
		in, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("linux.netDevices[%q]: %w", name, err)
		}
		if d.Name != "" && d.Name != name {
			if err := h.LinkSetName(in, d.Name); err != nil {
				return fmt.Errorf("linux.netDevices[%q].name %q: %w", name, d.Name, err)
			}
		}
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_PERMANENT == 0 {
				continue
			}
			a.Label = ""
			if err := h.AddrAdd(in, &a); err != nil {
				return fmt.Errorf("linux.netDevices[%q]: address %s: %w", name, a.IPNet, err)
			}
		}
		if err := h.LinkSetUp(in); err != nil {
			return fmt.Errorf("linux.netDevices[%q]: set up: %w", name, err)
		}
	}
	runtime.KeepAlive(target)
	return nil
}
