// Package network attaches containers to CNI networks for both of Hull's
// runtimes, and manages the networks themselves.
//
// # Networks
//
// A network is a CNI conflist, <ConfDir>/<name>.conflist, run through libcni
// with the plugins found in PluginDirs (Debian's containernetworking-plugins
// in /usr/lib/cni). New writes the default network (hull0) when its file is
// absent:
//
//	bridge     isGateway, ipMasq, hairpinMode; host-local IPAM on the configured subnet
//	portmap    the portMappings capability, snat on, so published ports answer on
//	           127.0.0.1 and on the host's own addresses
//	firewall   lets the bridge's traffic through FORWARD whatever the host's policy
//
// Create writes the same shape for a named network after checking the name,
// the subnet (IPv4, no host bits, no overlap with another network or a host
// interface) and the bridge name (at most 15 characters, not shared). Remove
// refuses the default network and networks with attachments, and deletes the
// bridge once nothing is attached to it.
//
// host-local keeps its allocations under <StateDir>/ipam: the package adds
// that dataDir to any host-local IPAM section that names none, at attach time,
// so the allocations belong to one daemon even when conflists are shared.
//
// # Attachments
//
// Attach creates the network namespace itself and bind-mounts it at
// <StateDir>/netns/<id>; the runtime joins it through the path in the OCI
// spec. Hull creates the netns rather than letting the runtime create one
// and networking it afterwards because the vm runtime needs the namespace and
// its interfaces before the VM boots: QEMU is started inside the namespace
// and mirrors the veth to a tap (Kata's model), and the guest is configured
// with the addresses CNI gave. The same order then serves the native runtime.
// The netns code is a dozen lines written here (an unshare on a locked thread
// that is thrown away, and a bind mount), because the libraries at hand fix
// the mount directory (vishvananda/netns) or are test helpers (plugins'
// testutils).
//
// Attach then runs CNI ADD for the loopback plugin (lo up) and for the
// network's conflist, with the portMappings capability carrying the published
// ports. Before ADD every host port is checked three ways: against the other
// attachments of this manager; against portmap's CNI-HOSTPORT-DNAT chain, for
// ports other CNI users on the host publish (another hulld, podman); and with a
// real bind on the host address, so a port held by a host process fails with
// ErrPortInUse naming ip:port/proto and the holder (pid and command, found
// through /proc). A plugin missing from PluginDirs fails with ErrMissingPlugin
// before anything is created. Any failure undoes everything done so far.
//
// Each attachment is recorded as JSON in <StateDir>/attachments (written
// atomically, first before the netns exists and again when ADD succeeded), and
// libcni keeps its cache in <StateDir>/cache. Detach runs DEL with the cached
// configuration and runtime arguments, so it works after hulld restarts (a new
// Manager over the same directories) and after the conflist changed; it is
// idempotent. When hulld died in the middle of an Attach the record is there
// but libcni's cache may not be: DEL then runs with the recorded conflist, and
// the firewall plugin, which needs the ADD result to find its rules, is given
// the addresses from host-local's allocation files.
//
// Plugins run under a context of their own (bounded, not cancelled with the
// caller's, which is checked between steps): a plugin killed half way leaves
// state its own DEL trips over. Some DELs are not idempotent anyway (the
// bridge plugin fails on a NAT chain an interrupted ADD never made), so when
// the list's DEL fails every plugin's DEL runs on its own, and Detach then
// looks for what is left (host-local allocations, iptables rules naming the
// container or its addresses): nothing left is a success, anything left keeps
// the record and the error names it. Attach and Detach are serialized per ID; different IDs proceed
// concurrently (host-local has its own lock). Releasing announces a Detach
// about to run (hulld detaches a container that ended beside reporting its
// exit): until it ends, an Attach that wants one of that attachment's host
// ports, and a Remove of its network, wait for it instead of failing.
//
// EtcFiles writes the container's resolv.conf, hosts and hostname.
package network
