package seccomp

import (
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The default profile is an allowlist in the spirit of containerd's and
// Docker's: everything not listed fails with EPERM. It is written here as
// data grouped by topic; the syscall names are the kernel's. It leaves
// out, compared with the kernel's full table: namespace and mount
// management, module loading, kexec/reboot, clock setting, keyrings
// (add_key, keyctl, request_key), bpf, perf, userfaultfd, io_uring (as
// Docker now does), ptrace-like cross-process access, and everything
// obsolete. Those come back only with the capability that would allow them
// anyway (DefaultFor).

// allowed are the syscalls every container may make, grouped by topic.
var allowed = []string{
	// files, directories and descriptors
	`access chdir chmod chown chown32 close close_range copy_file_range creat dup dup2 dup3
	 faccessat faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchown
	 fchown32 fchownat fcntl fcntl64 fdatasync flock fstat fstat64 fstatat64 fstatfs
	 fstatfs64 fsync ftruncate ftruncate64 futimesat getcwd getdents getdents64 lchown
	 lchown32 link linkat _llseek lseek lstat lstat64 mkdir mkdirat mknod mknodat newfstatat
	 open openat openat2 pipe pipe2 pread64 preadv preadv2 pwrite64 pwritev pwritev2 read readahead
	 readlink readlinkat readv rename renameat renameat2 rmdir sendfile sendfile64 splice
	 stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs tee
	 truncate truncate64 umask unlink unlinkat utime utimensat utimensat_time64 utimes
	 vmsplice write writev ioctl`,
	// extended attributes
	`fgetxattr flistxattr fremovexattr fsetxattr getxattr lgetxattr listxattr llistxattr
	 lremovexattr lsetxattr removexattr setxattr`,
	// waiting for events
	`epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
	 epoll_wait_old eventfd eventfd2 fanotify_mark inotify_add_watch inotify_init
	 inotify_init1 inotify_rm_watch poll ppoll ppoll_time64 pselect6 pselect6_time64 select
	 _newselect signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64
	 timerfd_settime timerfd_settime64`,
	// asynchronous I/O and I/O priority
	`io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit
	 ioprio_get ioprio_set`,
	// memory
	`brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap mmap2
	 mprotect mremap msync munlock munlockall munmap remap_file_pages`,
	// processes, threads and scheduling (clone is below, with a condition)
	`execve execveat exit exit_group fork vfork wait4 waitid waitpid kill tgkill tkill
	 pidfd_open pidfd_send_signal process_mrelease prctl getcpu getpgid getpgrp getpid
	 getppid getsid gettid setpgid setsid set_robust_list get_robust_list set_tid_address
	 set_thread_area get_thread_area rseq restart_syscall seccomp capget capset getpriority
	 setpriority getrlimit setrlimit prlimit64 ugetrlimit getrusage times sysinfo uname
	 sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
	 sched_get_priority_min sched_getscheduler sched_rr_get_interval
	 sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
	 sched_setscheduler sched_yield ptrace getrandom futex futex_time64 futex_waitv`,
	// user and group ids
	`getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getresgid
	 getresgid32 getresuid getresuid32 getuid getuid32 setfsgid setfsgid32 setfsuid
	 setfsuid32 setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid
	 setresgid32 setresuid setresuid32 setreuid setreuid32 setuid setuid32`,
	// signals
	`alarm pause rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
	 rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack
	 sigprocmask sigreturn`,
	// clocks and timers (setting the clock needs CAP_SYS_TIME, checked by the kernel)
	`adjtimex clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
	 clock_gettime64 clock_nanosleep clock_nanosleep_time64 getitimer gettimeofday nanosleep
	 setitimer time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
	 timer_settime timer_settime64`,
	// sockets
	`accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
	 recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown
	 socket socketcall socketpair`,
	// System V and POSIX IPC
	`ipc mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
	 mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd semctl semget semop semtimedop
	 semtimedop_time64 shmat shmctl shmdt shmget`,
	// unprivileged sandboxing and memory protection keys
	`landlock_add_rule landlock_create_ruleset landlock_restrict_self pkey_alloc pkey_free
	 pkey_mprotect`,
	newerSyscalls,
}

// newerSyscalls are harmless syscalls of recent kernels (6.5 and later).
// Those the linked libseccomp does not know yet (Debian 12's knows up to
// futex_requeue) are ignored, so they answer ENOSYS through the stub in
// Compile, as on an older kernel; with a newer libseccomp they are allowed.
const newerSyscalls = `cachestat fchmodat2 futex_requeue futex_wait futex_wake map_shadow_stack mseal
	 statmount listmount getxattrat setxattrat listxattrat removexattrat uretprobe`

// archAllowed are architecture-specific syscalls, by GOARCH.
var archAllowed = map[string]string{
	"amd64":   "arch_prctl modify_ldt",
	"386":     "modify_ldt",
	"arm":     "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
	"arm64":   "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
	"ppc64le": "sync_file_range2 swapcontext",
	"s390x":   "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
	"riscv64": "riscv_flush_icache",
}

// defaultArchs are the architectures a default profile covers, by GOARCH:
// the native one and those the CPU can also run.
var defaultArchs = map[string][]specs.Arch{
	"amd64":   {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	"386":     {specs.ArchX86},
	"arm64":   {specs.ArchARM, specs.ArchAARCH64},
	"arm":     {specs.ArchARM},
	"ppc64le": {specs.ArchPPC64LE},
	"s390x":   {specs.ArchS390, specs.ArchS390X},
	"riscv64": {specs.ArchRISCV64},
	"mips64":  {specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32},
	"mips64le": {specs.ArchMIPSEL, specs.ArchMIPSEL64,
		specs.ArchMIPSEL64N32},
	"loong64": {specs.ArchLOONGARCH64},
}

// capAllowed are the syscalls a capability in the bounding set brings back.
var capAllowed = map[string]string{
	"CAP_DAC_READ_SEARCH": "open_by_handle_at",
	"CAP_SYS_ADMIN": `bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
		mount mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl
		quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare`,
	"CAP_SYS_BOOT":       "reboot",
	"CAP_SYS_CHROOT":     "chroot",
	"CAP_SYS_MODULE":     "delete_module init_module finit_module",
	"CAP_SYS_PACCT":      "acct",
	"CAP_SYS_PTRACE":     "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
	"CAP_SYS_RAWIO":      "iopl ioperm",
	"CAP_SYS_TIME":       "settimeofday stime clock_settime clock_settime64",
	"CAP_SYS_TTY_CONFIG": "vhangup",
	"CAP_SYSLOG":         "syslog",
	"CAP_BPF":            "bpf",
	"CAP_PERFMON":        "perf_event_open",
}

// personalities are the personality(2) values the default profile allows:
// PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26 and the query value.
var personalities = []uint64{0x0, 0x0008, 0x20000, 0x20008, 0xffffffff}

// nsCloneFlags are the clone flags that create namespaces: without
// CAP_SYS_ADMIN, clone is allowed only when none of them is set.
const nsCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Default is the default profile for a container without any of the
// capabilities that unlock extra syscalls: DefaultFor(nil). Containers
// built with oci.DefaultSpec get DefaultFor(their bounding set) instead.
func Default() *specs.LinuxSeccomp {
	return DefaultFor(nil)
}

// DefaultFor is the default profile for a container whose bounding set is
// caps: the allowlist, plus the syscalls each capability in caps needs
// (CAP_SYS_ADMIN brings mount, unshare, setns, clone with namespace flags,
// ...; CAP_SYS_CHROOT brings chroot; and so on). Without CAP_SYS_ADMIN,
// clone is allowed only without namespace flags, and clone3 (whose flags
// seccomp cannot see) fails with ENOSYS so that libc falls back to clone.
func DefaultFor(caps []string) *specs.LinuxSeccomp {
	var names []string
	for _, group := range allowed {
		names = append(names, strings.Fields(group)...)
	}
	names = append(names, strings.Fields(archAllowed[runtime.GOARCH])...)
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: append([]specs.Arch(nil), defaultArchs[runtime.GOARCH]...),
		Syscalls:      []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}},
	}
	for _, p := range personalities {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
			Names:  []string{"personality"},
			Action: specs.ActAllow,
			Args:   []specs.LinuxSeccompArg{{Index: 0, Value: p, Op: specs.OpEqualTo}},
		})
	}
	admin := false
	seen := map[string]bool{}
	for _, c := range caps {
		c = normalizeCap(c)
		if seen[c] {
			continue
		}
		seen[c] = true
		if c == "CAP_SYS_ADMIN" {
			admin = true
		}
		if extra, ok := capAllowed[c]; ok {
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: strings.Fields(extra), Action: specs.ActAllow})
		}
	}
	if !admin {
		// The flags are the first argument of clone, except on s390 where
		// the stack comes first.
		idx := uint(0)
		if runtime.GOARCH == "s390x" {
			idx = 1
		}
		nosys := uint(unix.ENOSYS)
		s.Syscalls = append(s.Syscalls,
			specs.LinuxSyscall{
				Names:  []string{"clone"},
				Action: specs.ActAllow,
				Args:   []specs.LinuxSeccompArg{{Index: idx, Value: nsCloneFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			},
			specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &nosys},
		)
	}
	return s
}

// normalizeCap accepts "sys_admin" and "CAP_SYS_ADMIN" alike.
func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}
