package cgroups

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// DefaultDeviceRules are the allow rules every container gets after its own
// rules, as runc does: mknod of any node (the node still has to be allowed to
// be opened), and read/write on the devices the runtime-spec makes every
// container have (/dev/null, zero, full, random, urandom, tty, console,
// ptmx) plus the pseudo-terminals of /dev/pts and /dev/net/tun. Only the
// cgroup permission: the nodes themselves exist only if the runtime makes
// them.
func DefaultDeviceRules() []specs.LinuxDeviceCgroup {
	return []specs.LinuxDeviceCgroup{
		devRule("c", -1, -1, "m"),
		devRule("b", -1, -1, "m"),
		devRule("c", 1, 3, "rwm"),    // /dev/null
		devRule("c", 1, 5, "rwm"),    // /dev/zero
		devRule("c", 1, 7, "rwm"),    // /dev/full
		devRule("c", 1, 8, "rwm"),    // /dev/random
		devRule("c", 1, 9, "rwm"),    // /dev/urandom
		devRule("c", 5, 0, "rwm"),    // /dev/tty
		devRule("c", 5, 1, "rwm"),    // /dev/console
		devRule("c", 5, 2, "rwm"),    // /dev/ptmx
		devRule("c", 136, -1, "rwm"), // /dev/pts/*
		devRule("c", 10, 200, "rwm"), // /dev/net/tun (runc 1.1 and 1.2.3+ allow it; VPN clients need it)
	}
}

// DeviceAllowRules gives an allow rule for each device node of
// linux.devices. ContainerResources does not add them: the runtime-spec
// applies resources.devices in the listed order, and runc and crun do not
// open the cgroup for linux.devices either (engines send an explicit allow
// rule with each device they add). It is here for callers that want it.
func DeviceAllowRules(devs []specs.LinuxDevice) []specs.LinuxDeviceCgroup {
	var out []specs.LinuxDeviceCgroup
	for _, d := range devs {
		typ := d.Type
		if typ == "u" {
			typ = "c" // unbuffered character device
		}
		if typ != "b" && typ != "c" {
			continue // fifos need no cgroup rule
		}
		out = append(out, devRule(typ, d.Major, d.Minor, "rwm"))
	}
	return out
}

// ContainerResources is what the runtime applies at create: a copy of
// spec.linux.resources whose device rules are the spec's own followed by
// DefaultDeviceRules, as runc does. A spec without device rules gets a
// leading deny-all, so the allow list is a real allow list (the v1 emulator
// and the v2 filter start from deny-all for such a list anyway). The spec
// itself is not modified.
func ContainerResources(spec *specs.Spec) *specs.LinuxResources {
	var r specs.LinuxResources
	if spec != nil && spec.Linux != nil && spec.Linux.Resources != nil {
		r = *spec.Linux.Resources
	}
	rules := slices.Clone(r.Devices)
	if len(rules) == 0 {
		rules = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	}
	rules = append(rules, DefaultDeviceRules()...)
	r.Devices = rules
	return &r
}
