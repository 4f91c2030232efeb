// Package daemon is hulld: the gRPC services of api/hull/v1 wired onto
// Hull's libraries.
//
//   - namespaces and images: metadata.DB and image.Service;
//   - containers: records in their own bbolt file (<root>/containers.db:
//     v1/<ns>/<id> → JSON), each with its image, runtime, OCI spec, labels
//     and rw snapshot (prepared on the image's top layer, recorded as a GC
//     root before it is made);
//   - tasks: one runtime-v2 shim per container, started with the shim
//     binary protocol (`containerd-shim-<name>-v2 -namespace N -id ID
//     -address A -publish-binary B start` in the task's bundle directory
//     <state>/tasks/<ns>/<id>), spoken to over ttrpc with containerd's
//     task API. The shim's events come back on the daemon's ttrpc socket
//     (<address>.ttrpc, given as $TTRPC_ADDRESS) or through `hull publish`.
//   - stdio: the daemon makes fifos in the bundle and reads them into the
//     container's log file (<root>/logs/<ns>/<id>.log) and into attached
//     clients. Shims hold a read end of each output fifo themselves, so a
//     container never gets EPIPE while hulld is down; its output waits in
//     the pipe until hulld comes back and reopens the fifos.
//   - restarts: what a task needs to be found again (runtime, shim
//     address, stdio) is written to task.json in its bundle. On start
//     hulld reconnects to every shim; a process that exited meanwhile is
//     reported (event /tasks/exit, and in the task's status) with its
//     code; a shim that died is cleaned up with `shim delete`.
package daemon
