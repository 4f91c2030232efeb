package server

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ModulesOrderFile lists the kernel modules to load, one path a line, in
// dependency order (written by vm/initramfs).
const ModulesOrderFile = "/lib/modules/load.order"

type kernelMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var kernelMounts = []kernelMount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
}

// MountKernelFS mounts what the agent and the runtime need: /proc, /sys,
// /dev (devtmpfs, devpts, shm), /run and the cgroup v2 hierarchy. A mount
// already there (EBUSY) is kept.
func MountKernelFS() error {
	for _, m := range kernelMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	// The cgroup v2 root hands every controller to its children, as
	// systemd does on a v2 host.
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		var add []string
		for _, c := range strings.Fields(string(b)) {
			add = append(add, "+"+c)
		}
		if len(add) > 0 {
			_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte(strings.Join(add, " ")), 0)
		}
	}
	return nil
}

// LoadModules loads the modules listed in ModulesOrderFile (if it exists)
// and returns how many it loaded.
func LoadModules() (int, error) {
	f, err := os.Open(ModulesOrderFile)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			p = "/" + p
		}
		m, err := os.Open(p)
		if err != nil {
			return n, fmt.Errorf("kernel module: %w", err)
		}
		err = unix.FinitModule(int(m.Fd()), "", 0)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return n, fmt.Errorf("finit_module %s: %w", p, err)
		}
		n++
	}
	return n, sc.Err()
}

// Reaper reaps the agent's children that nobody waits for (orphans
// re-parented to PID 1), and leaves alone the pids the agent tracks itself.
// Spawners hold Spawn.RLock while they start and register a process, so a
// child is never reaped between its start and its registration.
type Reaper struct {
	Spawn   sync.RWMutex
	mu      sync.Mutex
	tracked map[int]bool
}

// Track marks pid as waited for by its owner.
func (r *Reaper) Track(pid int) {
	r.mu.Lock()
	if r.tracked == nil {
		r.tracked = map[int]bool{}
	}
	r.tracked[pid] = true
	r.mu.Unlock()
}

// Untrack forgets pid once its owner has waited for it.
func (r *Reaper) Untrack(pid int) {
	r.mu.Lock()
	delete(r.tracked, pid)
	r.mu.Unlock()
}

// Run reaps untracked zombie children on every SIGCHLD until stop closes.
func (r *Reaper) Run(stop <-chan struct{}) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-stop:
			return
		case <-ch:
			r.reapOnce()
		}
	}
}

func (r *Reaper) reapOnce() {
	r.Spawn.Lock()
	defer r.Spawn.Unlock()
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] != "Z" || f[1] != strconv.Itoa(self) {
			continue
		}
		r.mu.Lock()
		mine := r.tracked[pid]
		r.mu.Unlock()
		if !mine {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}
