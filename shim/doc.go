// Package shim is containerd-shim-hull-v2: Hull's containerd runtime-v2
// shim (runtime type io.containerd.hull.v2), one process per container.
//
// What it speaks:
//   - the shim binary protocol (binary.go): `start` spawns the long-lived
//     shim in its own session with the listening socket and prints its
//     ttrpc address (a plain unix:// address, which containerd 1.6 reads
//     and 1.7/2.x accept as protocol version 2); `delete` cleans up after a
//     dead shim and prints a DeleteResponse;
//   - the ttrpc task service containerd.task.v2.Task (service.go), with the
//     types of containerd's api module;
//   - task events back to the daemon (events.go): TaskCreate, Start, Exit,
//     Delete, ExecAdded, ExecStarted, OOM, Paused and Resumed, by the
//     events service's Forward over $TTRPC_ADDRESS, or by the
//     -publish-binary protocol as a fallback.
//
// Each process of the container follows the state machine of state.go
// (created, running, paused, stopped, deleted); an illegal move is a
// *TransitionError, an errdefs.ErrFailedPrecondition. Errors cross the
// ttrpc boundary as gRPC statuses (errgrpc) so the daemon gets errdefs
// kinds back.
//
// The work is done by a Backend (backend.go). Native (native.go) drives a
// runc-compatible OCI runtime CLI through go-runc: hull-runtime by default
// (next to the shim binary, else on PATH), or the binary named in the
// options: the runc shim's containerd.runc.v1.Options (BinaryName, Root,
// SystemdCgroup), or runtimeoptions.v1.Options (ctr --runtime-config-path,
// CRI ConfigPath/ConfigBody) pointing at a TOML file with the keys of
// Options. The vm mode will be a second Backend selected by `mode = "vm"`.
//
// Running it from a daemon (hulld does what containerd does):
//   - in the bundle directory (config.json; rootfs empty or absent), run
//     `containerd-shim-hull-v2 -namespace NS -id ID -address DAEMON_ADDR
//     -publish-binary BIN start` (containerd also writes the runtime
//     options to its stdin; the shim takes them from Create); it prints unix:///run/hull/s/<hash> and writes the same to
//     ./address and the shim's pid to ./shim.pid;
//   - dial that address with ttrpc and use containerd.task.v2.Task
//     (Create with the rootfs mounts, fifos and options, Start, Wait, ...);
//     after Delete, Shutdown makes the shim exit;
//   - events come back by $TTRPC_ADDRESS (serve
//     containerd.services.events.ttrpc.v1.Events/Forward there) or by
//     running `BIN --address DAEMON_ADDR publish --topic T --namespace NS`
//     with the event Any on stdin;
//   - after a daemon restart, read ./address and dial again: the shim and
//     its container kept running; if the shim is gone, run the same
//     command line with `-bundle DIR delete` to clean up.
//
// Measured here (TestShimIdleRSS, BenchmarkCtrRunRm): an idle shim holds
// 6.1 MiB VmRSS / 4.9 MiB PSS as `make build` links it (cgo, so libc is
// mapped), 4.8 MiB statically linked, against 13.1 MiB / 12.0 MiB for
// containerd-shim-runc-v2; without the trimming of idle.go it would hold
// 11.2 MiB. `ctr run --rm true` takes as long through either shim
// (medians 151 vs 152 ms with runc; 138 ms with hull-runtime).
//
// Why not containerd's shim framework (containerd/v2/pkg/shim): it links
// the containerd module (plugin registry, otel, grpc, logrus, the runc
// shim's process package), which is where containerd-shim-runc-v2's
// 13 MiB idle RSS goes, and the budget is 8 MiB per shim. The
// protocol itself is small (two subcommands, a socket, a ttrpc service,
// an event publisher), so it is written here over ttrpc and the api
// module; the rootfs is mounted with Hull's own mount package. The reaper (reaper.go) is the shim's own because the shim is a
// subreaper and must reap every child, including the runtime CLI's, which
// go-runc lets it do through its ProcessMonitor seam.
package shim
