// Package container is the runtime side of hull-runtime: the container
// lifecycle as an explicit state machine (status.go), its persisted state
// (store.go) and the operations of the OCI runtime CLI (create.go,
// exec.go, ops.go).
//
// # State
//
// Each container has a directory <root>/<id> (root is --root, default
// /run/hull-runtime) holding state.json, written atomically (temp file +
// rename), and, between create and start, the exec fifo. Every operation
// takes an exclusive flock on the directory for its whole duration, so
// concurrent CLI calls on one id serialise; mkdir of the directory is
// what makes a duplicate id fail (ErrExist). The status is derived, not
// stored: "stopped" when the init pid is gone or a zombie (its start
// time is recorded against pid reuse), "created" while the exec fifo
// exists, "paused" when pause froze the cgroup, else "running".
// Transitions are checked by CheckTransition; an illegal one is a
// *TransitionError{From, To} that also matches the sentinels
// (ErrNotRunning, ErrRunning, ErrNotCreated, ErrPaused).
//
// # Process model
//
// create starts the container init (runtime/initproc) in new namespaces
// made by clone flags: hull-runtime-init, a pure Go build of the init
// installed beside hull-runtime, or `hull-runtime init` when that is
// missing; when namespaces are joined by path, the C constructor of
// runtime/nsenter enters them before the Go runtime starts, in `<this
// program> init` when it links nsenter (cgo builds, hull-agent), else in
// hull-runtime-helper's init (exe.go, helper.go). The
// init is born in its cgroup, forked by a runtime thread that joined the
// v1 hierarchies first (startInCgroup), else the runtime moves it
// (runtime/cgroups). The runtime sends it the spec over a socketpair and
// reads back either an error naming the failing field or "ready".
// Prestart and createRuntime hooks run in the runtime when the init asks
// (mounts made, before pivot_root). start opens the exec fifo; the init
// then runs the startContainer hooks and execve's, and start waits for
// the fifo to close on execve before the poststart hooks. run does both
// in one step without a fifo. The init's binary is opened through a
// private read-only bind mount (initExe, CVE-2019-5736).
//
// On any error, create kills the init, removes the cgroup and the state
// directory: a failed create leaves nothing behind.
package container
