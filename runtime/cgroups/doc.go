// Package cgroups is the cgroup layer of hull-runtime: it puts a container's
// processes into cgroups, applies the runtime-spec's linux.resources, freezes
// and thaws, lists processes, reads statistics and removes the cgroups.
//
// # Library and hand-written parts
//
// The cgroup file formats, the v1 write orders (memory before or after
// memory+swap, cpuset parents, realtime budgets before joining), the v1
// device-rule emulator and the cgroup v2 eBPF device filter all come from
// github.com/opencontainers/cgroups (runc's extracted library: fs for v1,
// fs2 for v2, devices). Its systemd driver is not used: --systemd-cgroup
// gives ErrSystemd. What is written here by hand, and why:
//
//   - Convert: runtime-spec LinuxResources to the library's Resources, with
//     validation whose errors name the config.json field (the library takes
//     already-validated input and answers with bare kernel errors).
//   - Merge: `update` gives only what changes; the merged result is applied
//     so v1 memory/swap writes keep their order (the library assumes the
//     caller holds the whole configuration, as runc's state.json does).
//   - Path resolution and hybrid hosts: the library joins the cgroup2 tree of
//     a hybrid host blindly and its v2 directory creation assumes cgroup2 is
//     mounted at /sys/fs/cgroup. Here the v2 tree of a hybrid host is used
//     only when it has controllers (e.g. hugetlb, when v1 does not mount
//     it), and only for those controllers; createV2 makes the directories
//     and enables the controllers wherever cgroup2 is mounted.
//   - pids.limit 0: the runtime-spec says 0 is a real limit; the library
//     writes 1 (for systemd), so pids.max=0 is written afterwards.
//   - memory.kernelTCP on v1 (memory.kmem.tcp.limit_in_bytes): the library
//     dropped kernel memory settings.
//   - cpu.weight on v2: the library leaves the shares-to-weight conversion
//     to its caller; settings v2 cannot honour (realtime budgets, net_cls,
//     net_prio, kernelTCP) are refused there instead of silently dropped.
//   - Kernel refusals explained: when a v1 write fails, the hierarchy is
//     read to name the field and the cause (a memory limit below usage that
//     cannot be reclaimed, a realtime budget the parent lacks, CPUs or
//     memory nodes outside the parent cpuset, a per-device weight on a
//     device not scheduled by BFQ); the library returns the bare
//     EBUSY/EINVAL/EPERM/EOPNOTSUPP.
//   - v1 placement in one pass over mountinfo (v1Paths), checked equal to
//     the library's resolver by a test: the library re-reads mountinfo for
//     every controller it does not find, which cost 0.16 ms per create.
//   - OOM events (NotifyOOM: v1 eventfd on memory.oom_control, v2 inotify on
//     memory.events): runc keeps this in libcontainer, not in the library.
//   - Stats: the library's Stats are converted to the JSON shape of runc's
//     `events --stats` (runc's types package is not a separate module).
//
// Ignored fields, as the runtime-spec allows: memory.kernel (kernel memory
// limits no longer exist in the kernel), memory.useHierarchy (always on),
// and on v2, where they have no file, blockIO.leafWeight, memory.swappiness
// and memory.disableOOMKiller (as runc does).
//
// # Where the cgroup goes
//
// See New: an absolute cgroupsPath is taken under each hierarchy's root, a
// relative one below the runtime's own cgroup (on v2 below its parent, like
// runc), and an empty one becomes /hull-runtime/<container id>. A
// systemd-style "slice:prefix:name" path is refused with ErrSystemd.
//
// On a hybrid host whose cgroup2 tree offers controllers (the development
// machine's offers hugetlb, which v1 does not mount there), the container
// also gets a group in that tree: Paths()[""].
//
// # Device rules
//
// Set applies linux.resources.devices exactly as given (an update without
// device rules leaves them alone). At create the runtime passes
// ContainerResources(spec), which adds the default devices (/dev/null,
// zero, full, random, urandom, tty, console, ptmx, pts, net/tun) after the
// spec's rules, as runc does. A node listed in linux.devices is not opened
// by that alone: like runc and crun, the spec's own allow rules decide.
//
// # Tests
//
// The tests run as root against the host's real hierarchies, and
// TestCgroupV2InVM runs the same test binary on a pure cgroup v2 host: a
// QEMU guest (TCG) booting the cloud kernel that `make build` fetches.
package cgroups
