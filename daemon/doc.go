// Package daemon is hulld: the gRPC services of api/hull/v1 wired onto
// Hull's libraries.
//
//   - namespaces and images: metadata.DB and image.Service;
//   - containers: records in their own bbolt file (<root>/containers.db:
//     v1/<ns>/<id> → JSON), each with its image, runtime, OCI spec, labels
//     and rw snapshot. The snapshot is prepared on the image's top layer
//     and recorded as a GC root before it is made; its key is unique per
//     container incarnation, so a removed container's layer can go in the
//     background while a new container of the same id starts.
//   - tasks: one runtime-v2 shim per container, started with the shim
//     binary protocol (`containerd-shim-<name>-v2 -namespace N -id ID
//     -address A -publish-binary B start` in the task's bundle directory
//     <state>/tasks/<ns>/<id>), spoken to over ttrpc with containerd's task
//     API. Hull's own shim is started one exec shorter: hulld makes the
//     listening socket (<state>/s/<hash>) and starts the long-lived shim
//     with it, which is what that shim's `start` does. The shims' events
//     come back on the daemon's ttrpc socket (<address>.ttrpc, given as
//     $TTRPC_ADDRESS) or through `hull publish`.
//   - stdio: the daemon makes fifos in the bundle and reads them into the
//     container's log file (<root>/logs/<ns>/<id>.log) and into attached
//     clients (Tasks.Attach, a gRPC stream, so a client survives nothing
//     but needs nothing on disk). Shims hold a read end of each output
//     fifo themselves, so a container never gets EPIPE while hulld is
//     down; its output waits in the pipe until hulld comes back and
//     reopens the fifos.
//   - restarts: what a task needs to be found again (runtime, shim
//     address, stdio) is in task.json in its bundle. On start hulld
//     reconnects to every shim; a process that exited meanwhile is
//     reported (status and /tasks/exit) with its code; a shim that died is
//     cleaned up with `shim delete`.
//   - networks: a network.Manager over the CNI conflists of [network]
//     conf_dir (network.go). A container names a network (the default one
//     unless --net), "none" or "host"; at task create a named network's
//     attachment is made (netns, veth, address, published ports) and the
//     spec joins its netns by path; resolv.conf, hosts and hostname are
//     bind-mounted (native) or written into the rootfs (vm). The
//     attachment goes when the init exits (beside reporting the exit, not
//     before it: network.Manager.Releasing lets an attach that wants its
//     ports, or a network rm, wait for that detach), at task delete or
//     failed create, at container delete, and at start for tasks that
//     ended while hulld was down.
//   - a forced container delete (hull run --rm, hull c rm -f) stops the
//     task, removes the record, and answers once the container's
//     resources are gone: the shim's Delete returned (processes, a VM,
//     the rootfs mount) and the network is detached, the two side by
//     side. The shim's Shutdown, the bundle and the rw snapshot go in the
//     background (Close waits for them; a new task of the same id waits
//     for them; what a crash interrupts is finished or swept at the next
//     start).
//
// Exec processes are reattached after a restart too (task.json lists
// them); a client attached to one across the restart loses its stream.
//
// Known limits: with containerd's runc shim, output a process
// wrote and nobody read before it exited while hulld was down is lost
// (that shim closes its fifos at exit, as under containerd).
package daemon
