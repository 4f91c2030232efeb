// Package nsenter joins existing namespaces (setns) before the Go runtime
// starts, for `hull-runtime init` processes that must enter namespaces
// given by path (spec namespaces with a path, and every namespace of a
// running container for `exec`).
//
// Why C: setns(2) into a mount or user namespace fails with EINVAL in a
// multi-threaded process, and the Go runtime has started several threads
// before any Go code (even an init function) runs. A cgo
// __attribute__((constructor)) runs in the dynamic loader, before the Go
// runtime, while the process is still single-threaded. New namespaces need
// none of this: they are made with clone flags by os/exec
// (SysProcAttr.Cloneflags), which is cheaper and keeps this C small.
//
// Protocol: the parent sets _HULL_NSENTER="type:path,..." (user first) and
// _HULL_SYNCFD=<fd of the sync socket>. The constructor opens every path,
// then calls setns in order (after joining a user namespace it becomes uid
// and gid 0 there). When some namespaces are joined and others are new,
// the new ones are made here too, after the joins, with unshare(2) of the
// flags in _HULL_UNSHARE: a namespace made before joining a user
// namespace would belong to the wrong one. Joining (or making) a pid (or time) namespace only affects
// children, so it then forks: the parent writes {"type":"pid","pid":N} on
// the sync fd and exits, the child goes on into Go inside the namespace.
// Errors are written as {"type":"error","msg":...} naming the namespace
// and path, and the process exits 1.
//
// The cgroup: the init is born in it, forked by a runtime thread that
// joined it first (container.startInCgroup), so nothing here deals with
// cgroups.
//
// Importing this package (for its side effect) is all a main needs; when
// _HULL_NSENTER is unset the constructor returns at once. It sets
// initproc.NsenterLinked, which tells runtime/container that this program's
// own init can join namespaces (else it starts hull-runtime-helper's).
package nsenter

// #cgo CFLAGS: -Wall -O2
import "C"
