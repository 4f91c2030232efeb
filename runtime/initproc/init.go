// Package initproc is the container side of hull-runtime: the process the
// runtime starts as `hull-runtime init` inside the new (or joined)
// namespaces. It receives its Config over the sync socket, builds the
// rootfs, applies the process settings (console, rlimits, user, groups,
// capabilities, no_new_privs, AppArmor/SELinux, seccomp) and execve's the
// user process once `start` opens the exec fifo.
//
// Everything that can fail for a reason in config.json (a mount, a
// device, the user, the cwd, the process binary) fails before the init
// reports ready, so `create` returns the error naming the field; after
// ready only the fifo wait, startContainer hooks, seccomp and execve are
// left.
package initproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/containerd/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/hooks"
	"github.com/hullproject/hull/runtime/internal/trace"
	"github.com/hullproject/hull/runtime/rootfs"
	"github.com/hullproject/hull/runtime/timerslack"
)

// Main is `hull-runtime init`. It never returns.
func Main() {
	runtime.LockOSThread()
	main()
}

// MainInInit is Main for a program that calls it from a package init
// function (hull-runtime-init), which runs on the process's first thread,
// held there by the Go runtime until main.main. Main's LockOSThread would
// also start the runtime's template thread, one more thread for execve to
// stop (and for the kernel to schedule while it waits) on a busy host.
func MainInInit() {
	main()
}

func main() {
	runtime.GOMAXPROCS(1)
	// This thread execve's the container's process (and forks the hooks
	// the init runs): it gets the runtime's original timer slack back.
	slackErr := timerslack.RestoreFromEnv()
	// Started as /proc/self/fd/N (see container.initExe), it would show
	// as "N" in ps.
	name := []byte("hull-init\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
	fd, err := strconv.Atoi(os.Getenv(EnvSyncFD))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hull-runtime init: must be started by hull-runtime")
		os.Exit(2)
	}
	unix.CloseOnExec(fd)
	sync := os.NewFile(uintptr(fd), "sync")
	os.Unsetenv(EnvSyncFD)
	// The binary's fd this process was exec'd through: no hook or
	// container process may inherit it.
	if exe, err := strconv.Atoi(os.Getenv(EnvExeFD)); err == nil && exe > 2 && exe != fd {
		unix.Close(exe)
	}
	os.Unsetenv(EnvExeFD)
	os.Unsetenv(EnvSetsid)
	i := &initp{sync: sync, dec: json.NewDecoder(sync)}
	if v := os.Getenv(EnvProtocol); v != ProtocolVersion {
		exe, _ := os.Readlink("/proc/self/exe")
		i.send(Message{Type: MsgError, Msg: fmt.Sprintf("container init %s speaks protocol %s, the runtime %q: install hull-runtime and %s from the same build", exe, ProtocolVersion, v, "hull-runtime-init")})
		os.Exit(1)
	}
	os.Unsetenv(EnvProtocol)
	if slackErr != nil {
		i.send(Message{Type: MsgError, Msg: "container init: timer slack: " + slackErr.Error()})
		os.Exit(1)
	}
	if err := i.run(); err != nil {
		if !i.ready {
			i.send(Message{Type: MsgError, Msg: err.Error()})
		} else {
			fmt.Fprintf(os.Stderr, "hull-runtime init: %v\n", err)
		}
		os.Exit(1)
	}
	os.Exit(0) // not reached: run ends in execve
}

type initp struct {
	sync  *os.File
	dec   *json.Decoder
	cfg   *Config
	ready bool
}

// reply is what the init sends: a Message without a Config, whose encoder
// is cheap to build (the init's own encoders are all cold).
type reply struct {
	Type string `json:"type"`
	Msg  string `json:"msg,omitempty"`
	Pid  int    `json:"pid,omitempty"`
}

func (i *initp) send(m Message) error {
	data, err := json.Marshal(&reply{Type: m.Type, Msg: m.Msg, Pid: m.Pid})
	if err != nil {
		return err
	}
	_, err = i.sync.Write(append(data, '\n'))
	return err
}

func (i *initp) recv(want string) (*Message, error) {
	var m Message
	if err := i.dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("read from runtime: %w", err)
	}
	if m.Type != want {
		return nil, fmt.Errorf("runtime sent %q, want %q", m.Type, want)
	}
	return &m, nil
}

func (i *initp) run() error {
	trace.Mark("init: go started")
	m, err := i.recv(MsgConfig)
	if err != nil {
		return err
	}
	trace.Mark("init: config read")
	cfg := m.Config
	if cfg != nil {
		if err := cfg.DecodeSpec(); err != nil {
			return fmt.Errorf("runtime sent a bad spec: %w", err)
		}
	}
	if cfg == nil || cfg.Process == nil || (!cfg.Exec && cfg.Spec == nil) {
		return errors.New("runtime sent no config")
	}
	i.cfg = cfg
	p := cfg.Process
	if a := p.ExecCPUAffinity; a != nil && cfg.Exec {
		if err := setAffinity("process.execCPUAffinity.initial", a.Initial); err != nil {
			return err
		}
	}
	if !cfg.Exec {
		if err := i.setupContainer(); err != nil {
			return err
		}
	}
	trace.Mark("init: container set up")
	if p.Terminal {
		if err := setupConsole(cfg); err != nil {
			return err
		}
	}
	if p.OOMScoreAdj != nil && !cfg.Exec {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("process.oomScoreAdj: %w", err)
		}
	}
	for _, rl := range p.Rlimits {
		res, ok := rlimits[rl.Type]
		if !ok {
			return fmt.Errorf("process.rlimits: unknown type %q", rl.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("process.rlimits %s: %w", rl.Type, err)
		}
	}
	if err := setScheduler(p.Scheduler); err != nil {
		return err
	}
	if err := setIOPriority(p.IOPriority); err != nil {
		return err
	}
	if cfg.Spec != nil && cfg.Spec.Linux != nil {
		if err := setPersonality(cfg.Spec.Linux.Personality); err != nil {
			return err
		}
	}
	if !cfg.Exec && !cfg.NoNewKeyring {
		name := "_ses"
		if cfg.State != nil {
			name = "_ses." + cfg.State.ID
		}
		if id, err := unix.KeyctlJoinSessionKeyring(name); err == nil {
			_ = unix.KeyctlSetperm(id, 0x3f3f0000)
		} else if !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("join session keyring: %w", err)
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	if err := applyLabels(p); err != nil {
		return err
	}
	sc := cfg.Seccomp
	if sc != nil && !p.NoNewPrivileges {
		if err := i.loadSeccomp(sc); err != nil {
			return err
		}
		sc = nil
	}
	trace.Mark("init: rlimits, keyring, nnp, labels")
	if err := dropBounding(p); err != nil {
		return err
	}
	env, err := setupUser(p)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return err
	}
	if err := applyCaps(p); err != nil {
		return err
	}
	trace.Mark("init: user, caps")
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	if err := chdirInside(p.Cwd); err != nil {
		return err
	}
	path, err := lookPath(p.Args, env)
	if err != nil {
		return err
	}
	if sc != nil && sc.Notify {
		// The listener fd must reach the runtime while it still
		// listens: load now (no_new_privs is set, nothing else needed).
		if err := i.loadSeccomp(sc); err != nil {
			return err
		}
		sc = nil
	}
	trace.Mark("init: cwd, lookpath")
	if !cfg.Exec {
		if err := i.send(Message{Type: MsgReady}); err != nil {
			return err
		}
		// With an exec fifo (create), the runtime stops listening
		// here; `start` learns the rest through the fifo. Without one
		// (run), it listens until execve closes the socket.
		var fifo *os.File
		if cfg.FifoFD > 0 {
			i.ready = true
			i.sync.Close()
			if fifo, err = openFifo(cfg.FifoFD); err != nil {
				return err
			}
		}
		if h := cfg.Spec.Hooks; h != nil && len(h.StartContainer) > 0 {
			st := *cfg.State
			st.Status = specs.StateRunning
			if err := hooks.Run(context.Background(), "startContainer", h.StartContainer, &st); err != nil {
				if fifo != nil {
					fifo.Write([]byte("E" + err.Error()))
				}
				return err
			}
		}
		if fifo != nil {
			// "0": go. The fifo stays open until execve closes it
			// (close-on-exec), which `start` waits for.
			if _, err := fifo.Write([]byte("0")); err != nil {
				return fmt.Errorf("write exec fifo: %w", err)
			}
		}
	}
	if sc != nil {
		if err := i.loadSeccomp(sc); err != nil {
			return err
		}
	}
	if a := p.ExecCPUAffinity; a != nil && cfg.Exec {
		if err := setAffinity("process.execCPUAffinity.final", a.Final); err != nil {
			return err
		}
	}
	if err := closeExtraFDs(3 + cfg.PreserveFDs); err != nil {
		return err
	}
	trace.Mark("init: exec")
	err = unix.Exec(path, p.Args, env)
	return fmt.Errorf("exec %s: %w", p.Args[0], err)
}

// joinCgroups moves the init into its cgroup v1 hierarchies by writing
// "0" to each "tasks" file: that moves only the calling thread, the one
// that execve's the container's process (Main keeps its goroutine locked
// to it), and spares the kernel the global cgroup_threadgroup_rwsem that
// moving a whole process (a cgroup.procs write) takes for writing, an RCU
// grace period each time: measured here 0.4 ms for the eight v1
// hierarchies against 12-20 ms. The Go runtime's other threads stay
// behind until execve ends them. A hierarchy that refuses the thread gets
// the whole process.
func joinCgroups(tasks []string) error {
	for _, f := range tasks {
		if err := writeCgroupFile(f, "0"); err != nil {
			procs := filepath.Join(filepath.Dir(f), "cgroup.procs")
			if perr := writeCgroupFile(procs, strconv.Itoa(os.Getpid())); perr != nil {
				return fmt.Errorf("linux.cgroupsPath: join %s: %w", filepath.Dir(f), err)
			}
		}
	}
	return nil
}

func writeCgroupFile(file, data string) error {
	fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(data))
	return err
}

// setupContainer is the create path: cgroup namespace, rootfs, hooks,
// pivot_root, hostname, sysctls.
func (i *initp) setupContainer() error {
	cfg := i.cfg
	spec := cfg.Spec
	if !cfg.NewMountNS {
		return errors.New("linux.namespaces: hull-runtime needs a new mount namespace for the rootfs")
	}
	// The runtime moves the init into its cgroup while the init builds
	// the rootfs; what needs the cgroup waits for it here.
	var (
		cgDone bool
		cgs    map[string]string
	)
	cgroupReady := func() (map[string]string, error) {
		if cgDone {
			return cgs, nil
		}
		cgDone = true
		m, err := i.recv(MsgCgroupDone)
		if err != nil {
			return nil, err
		}
		if err := joinCgroups(m.CgroupTasks); err != nil {
			return nil, err
		}
		if cgs, err = rootfs.ReadCgroups(); err != nil {
			return nil, err
		}
		if cfg.NewCgroupNS {
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return nil, fmt.Errorf("linux.namespaces (cgroup): unshare: %w", err)
			}
		}
		return cgs, nil
	}
	opts := rootfs.Options{Rootfs: cfg.Rootfs, Bundle: cfg.Bundle, UserNS: cfg.NewUserNS, CgroupNS: cfg.NewCgroupNS, Cgroups: cgroupReady}
	if err := rootfs.Prepare(spec, opts); err != nil {
		return err
	}
	if _, err := cgroupReady(); err != nil {
		return err
	}
	if cfg.RuntimeHooks {
		if err := i.send(Message{Type: MsgHooks}); err != nil {
			return err
		}
		if _, err := i.recv(MsgHooksDone); err != nil {
			return err
		}
	}
	if h := spec.Hooks; h != nil && len(h.CreateContainer) > 0 {
		if err := hooks.Run(context.Background(), "createContainer", h.CreateContainer, cfg.State); err != nil {
			return err
		}
	}
	trace.Mark("init: mounts, hooks")
	if err := rootfs.PivotRoot(cfg.Rootfs, cfg.NoPivot); err != nil {
		return err
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("domainname: %w", err)
		}
	}
	if spec.Linux != nil {
		for k, v := range spec.Linux.Sysctl {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("linux.sysctl %s: %w", k, err)
			}
		}
	}
	if cfg.Process.Terminal {
		// The console is made after the mounts but before the read-only
		// root, as /dev/console is bound over.
		if err := setupConsole(cfg); err != nil {
			return err
		}
		cfg.Process.Terminal = false // done
	}
	trace.Mark("init: pivot, hostname, sysctl")
	return rootfs.Finalize(spec)
}

// setupConsole makes a pty in the container's devpts, binds its slave to
// /dev/console (create only), makes it the controlling terminal on
// 0/1/2 and sends the master over the console socket (SCM_RIGHTS).
func setupConsole(cfg *Config) error {
	if cfg.ConsoleSocketFD <= 0 {
		return errors.New("process.terminal is true but no --console-socket was given")
	}
	master, slavePath, err := console.NewPty()
	if err != nil {
		return fmt.Errorf("process.terminal: open pty: %w", err)
	}
	defer master.Close()
	if cs := cfg.Process.ConsoleSize; cs != nil {
		_ = master.Resize(console.WinSize{Height: uint16(cs.Height), Width: uint16(cs.Width)})
	}
	if !cfg.Exec {
		if err := rootfs.Console(slavePath); err != nil {
			return err
		}
	}
	slave, err := unix.Open(slavePath, unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", slavePath, err)
	}
	for _, fd := range []int{0, 1, 2} {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return err
		}
	}
	unix.Close(slave)
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	sock := cfg.ConsoleSocketFD
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(sock, []byte(slavePath), rights, nil, 0); err != nil {
		return fmt.Errorf("--console-socket: send pty master: %w", err)
	}
	unix.Close(sock)
	return nil
}

// openFifo blocks until `start` opens the exec fifo (reopening the
// O_PATH fd the runtime passed, close-on-exec).
func openFifo(fd int) (*os.File, error) {
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo: %w", err)
	}
	unix.Close(fd)
	return f, nil
}

// chdirInside changes to cwd and checks that it resolves inside the
// container's root: a directory reached through a leaked host fd reads
// as "(unreachable)/..." (CVE-2024-21626).
func chdirInside(cwd string) error {
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return fmt.Errorf("process.cwd %q: must be an absolute path", cwd)
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("process.cwd %s: %w", cwd, err)
	}
	wd, err := unix.Getwd()
	if err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("process.cwd %s: resolves outside the container's root", cwd)
	}
	return nil
}

func lookPath(args []string, env []string) (string, error) {
	if len(args) == 0 || args[0] == "" {
		return "", errors.New("process.args: must name a program")
	}
	name := args[0]
	check := func(p string) error {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return unix.EISDIR
		}
		return unix.Access(p, unix.X_OK)
	}
	if strings.Contains(name, "/") {
		if err := check(name); err != nil {
			return "", fmt.Errorf("process.args[0] %q: %w", name, err)
		}
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			path = e[5:]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("process.args[0] %q: executable file not found in $PATH (%s)", name, path)
}

// closeExtraFDs marks every fd from first up close-on-exec, so that no
// runtime fd reaches the container process (CVE-2024-21626).
func closeExtraFDs(first int) error {
	// One syscall on Linux 5.11 and later.
	if err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list fds: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < first {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// RlimitKnown reports whether name is an rlimit type hull-runtime knows.
func RlimitKnown(name string) bool { _, ok := rlimits[name]; return ok }
