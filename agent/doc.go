// Package agent is hull-agent, the agent that runs as PID 1 in each Hull
// guest, and its host-side client.
//
// The API (agent/api, ttrpc, generated from agent.proto) follows Kata
// Containers' agent: CreateContainer, StartContainer, ExecProcess,
// SignalProcess, WaitProcess, Write/Read of the stdio streams, CloseStdin,
// TtyWinResize, StatsContainer, ConfigureNetwork (Kata's UpdateInterface and
// UpdateRoutes: the guest NICs get the addresses, routes and MTU of the
// container's veths, which the VM took over), DestroySandbox. Containers
// are run with the native runtime's code (runtime/container) inside the
// guest, so they get the same namespaces, cgroups (v2 in the guest),
// capabilities and seccomp as under hull-runtime on a host; they share the
// guest's network namespace (the VM is the sandbox).
//
// # Transport
//
// The guest serves on every channel it has (server.ServeAgent): a
// virtio-serial port named PortName (found under
// /sys/class/virtio-ports/*/name, polled until it appears) and, when a
// virtio-vsock device exists, AF_VSOCK port 1024 (agent/vsock.Port). Hosts
// dial vsock where /dev/vhost-vsock opens (QEMU), the hybrid-vsock socket
// for Cloud Hypervisor and Firecracker (vm.DialAgent), virtio-serial
// otherwise. A serial port has no connection semantics: while no host
// client is connected read() returns 0 at once, so the guest polls rather
// than spinning; a 0 after data means the host client went away, and the
// port is reopened for the next one (Reconnect on the host side).
//
// # Guest side
//
// Package agent/server is the guest side. As PID 1, hull-agent loads the
// kernel modules listed in /lib/modules/load.order (modular kernels such as
// Debian's cloud kernel), leaves the initramfs for a tmpfs root (so that
// containers get pivot_root), mounts /proc, /sys, /dev, /run and cgroup2,
// reaps orphans that are not its own tracked processes, and powers the
// guest off on DestroySandbox.
package agent

// PortName is the name of the virtio-serial port the agent serves on.
const PortName = "hull.agent"
