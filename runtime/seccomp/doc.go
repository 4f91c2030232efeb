// Package seccomp turns the runtime-spec's linux.seccomp section into a
// kernel seccomp filter, and holds the default profile and the features data
// for it.
//
// It is built on libseccomp through github.com/seccomp/libseccomp-golang
// (cgo; Debian's libseccomp-dev), which compiles the rules to BPF, handles
// multiplexed syscalls on 32-bit architectures and knows every architecture's
// syscall table.
//
// Built without cgo (CGO_ENABLED=0), the package still compiles: Default,
// DefaultFor, Validate's static checks and SendListener work, while Load
// fails with ErrUnsupported and Features reports seccomp disabled. Spec
// builders such as oci and the CLI therefore need no cgo.
//
// # When to call what
//
// The fast path, used by the runtime:
//
//   - At create time, in the runtime process: Cache.Compile(profile). It
//     checks every field, compiles the profile with libseccomp to classic
//     BPF and keeps the result on disk, so that a profile is compiled once
//     per host, not per container (the default profile takes ~15 ms to
//     compile for its three architectures, ~0.1 ms to read back).
//   - In the container init, as late as possible before execve, with the
//     OS thread locked: Program.Load. It is one seccomp(2) call with
//     SECCOMP_FILTER_FLAG_TSYNC, so the filter covers every thread; it
//     needs neither cgo nor libseccomp.
//
// The simple path, for callers that hold a profile in the init: Validate
// (checks and builds without loading) and Load / LoadNotify (compile and
// load in one go).
//
// The filter never sets no_new_privs by itself (libseccomp's NNP attribute
// is turned off). Loading a filter without no_new_privs needs CAP_SYS_ADMIN,
// so the caller follows runc's order:
//
//   - process.noNewPrivileges=true: set PR_SET_NO_NEW_PRIVS, drop to the
//     process user and capabilities, then Load just before execve.
//   - process.noNewPrivileges=false: Load while still privileged (before the
//     capabilities are dropped and before setuid), then drop.
//
// Between Load and execve only the syscalls the Go runtime and the init need
// must be allowed by the profile (execve itself, futex, write, ...); that is
// the same constraint runc has.
//
// # Decisions
//
//   - Unknown syscall names are ignored, as runc does: a profile written for
//     a newer kernel or another architecture must still load. UnknownSyscalls
//     lists them so that the caller can log a warning.
//   - Several conditions on different arguments of one rule must all match
//     (AND). When one argument index appears more than once in a rule, each
//     condition becomes a rule of its own (OR), as runc does, because
//     libseccomp cannot AND two conditions on the same argument.
//   - A rule whose action equals the default action is dropped (libseccomp
//     refuses it and it would change nothing).
//   - When two rules name the same syscall with the same conditions but
//     different actions, the first one wins: libseccomp keeps the rule it
//     already has, as it does under runc.
//   - errnoRet/defaultErrnoRet are only valid with SCMP_ACT_ERRNO and
//     SCMP_ACT_TRACE (the runtime spec says the runtime MUST fail otherwise);
//     they default to EPERM.
//   - SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD (libseccomp's meaning).
//   - SECCOMP_FILTER_FLAG_TSYNC in flags is accepted and is always in effect.
//     The other flags are seccomp(2) flags of the load, passed by
//     Program.Load itself, so they work with libseccomp 2.5 too (whose own
//     WAIT_KILLABLE_RECV support needs 2.6): a flag is refused with
//     ErrUnsupported only when the running kernel refuses it (asked with a
//     filter-less seccomp(2) call). WAIT_KILLABLE_RECV only means something
//     with a listener and is dropped when no rule notifies.
//   - SCMP_ACT_NOTIFY is supported the way runc does it: LoadNotify returns
//     the listener fd, the init hands it to the runtime process (the init
//     cannot reach listenerPath after pivot_root), and the runtime calls
//     SendListener, which connects to listenerPath and sends the
//     runtime-spec ContainerProcessState with the fd (SCM_RIGHTS, fds
//     ["seccompFd"]). NOTIFY is refused as the default action and for write
//     and sendmsg, which the init needs after the filter is loaded.
//     listenerPath without any NOTIFY rule is ignored (runtime spec);
//     NOTIFY without listenerPath, and listenerMetadata without
//     listenerPath, are errors.
//   - A syscall newer than the profile answers ENOSYS, as runc arranges:
//     when the default action denies (ERRNO, KILL, TRAP), Compile puts a
//     short BPF stub in front of libseccomp's program that returns ENOSYS
//     for syscall numbers above the highest one the profile names, per
//     architecture (x86_64, x32, x86, arm64, arm, ppc64le, s390x, riscv64),
//     so that libc falls back to older syscalls (fchmodat2 -> fchmodat).
//     The default profile also answers clone3 with ENOSYS explicitly, as
//     containerd's does, since clone3's flags cannot be inspected.
package seccomp
