// Package agent is hull-agent, the agent that runs as PID 1 in each Hull
// guest, and its host-side client.
//
// The API (agent/api, ttrpc, generated from agent.proto) follows Kata
// Containers' agent: CreateContainer, StartContainer, ExecProcess,
// SignalProcess, WaitProcess, Write/Read of the stdio streams, CloseStdin,
// TtyWinResize, StatsContainer, DestroySandbox. Containers are run with the
// native runtime's code (runtime/container) inside the guest, so they get the
// same namespaces, cgroups (v2 in the guest), capabilities and seccomp as
// under hull-runtime on a host.
//
// # Transport
//
// The agent serves on a virtio-serial port named PortName (found under
// /sys/class/virtio-ports/*/name). A port has no connection semantics: while
// no host client is connected read() returns 0 at once, so the guest side
// polls (server.SerialListener) rather than spinning, and one ttrpc connection lives
// for the guest's lifetime. vsock (for hosts with /dev/vhost-vsock) is not
// implemented yet.
//
// # PID 1
//
// The guest side is package agent/server. As PID 1 it mounts /proc, /sys, /dev, /run and cgroup2, loads the
// kernel modules listed in /lib/modules/load.order (modular kernels such as
// Debian's cloud kernel), and reaps orphans that are not the agent's own
// tracked processes. DestroySandbox powers the guest off.
package agent

// PortName is the name of the virtio-serial port the agent serves on.
const PortName = "hull.agent"
