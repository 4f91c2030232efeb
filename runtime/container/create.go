package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/cgroups"
	"github.com/hullproject/hull/runtime/hooks"
	"github.com/hullproject/hull/runtime/initproc"
	"github.com/hullproject/hull/runtime/internal/trace"
	"github.com/hullproject/hull/runtime/seccomp"
	"github.com/hullproject/hull/runtime/timerslack"
)

// CreateOptions are `create`'s flags.
type CreateOptions struct {
	Root          string
	ID            string
	Bundle        string
	ConsoleSocket string
	PidFile       string
	NoPivot       bool
	NoNewKeyring  bool
	PreserveFDs   int
	// ListenFDs: socket-activation fds ($LISTEN_FDS) among PreserveFDs;
	// the process gets LISTEN_FDS and LISTEN_PID=1, as runc does.
	ListenFDs int
	// LocalConsole, when set and process.terminal is true without a
	// ConsoleSocket, makes one (`run` in the foreground gives its own
	// terminal) and returns its path.
	LocalConsole func() (string, error)
	// StartNow is `run`: the init does not wait on the exec fifo but
	// execve's as soon as it is ready (create and start in one step).
	StartNow bool
	// Stdio of the init (and so of the process); nil means the
	// runtime's own.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Process is the container's init as seen by the runtime process that
// made it; Wait works only when the runtime is its parent (or subreaper).
type Process struct {
	Pid int
	// HasPoststart: the container has poststart hooks for `run` to run.
	HasPoststart bool

	// created is what DeleteExited needs, as create left it.
	created *createdState
}

// createdState is a container as the create that made it knows it.
type createdState struct {
	dir            string
	dirDev, dirIno uint64 // the state directory's, telling it from a later one of the same id
	rec            Record
	mgr            cgroups.Manager
	ownPidNS       bool
}

// Wait waits for the process and returns its exit code (128+signal when
// killed).
func (p *Process) Wait() (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// Create runs the create operation: the init is started in its
// namespaces and cgroup, builds the rootfs and waits on the exec fifo.
// On any error nothing is left behind (no state, process or cgroup).
func Create(ctx context.Context, o CreateOptions) (_ *Process, retErr error) {
	if err := ValidateID(o.ID); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	trace.Mark("create: begin")
	// The init's binary is made ready (initExe: a private read-only
	// mount of it, ~0.15 ms) beside the reading of config.json, for the
	// common case of an init that joins no namespace, unless PrepareInit
	// started it already.
	exeCh := takePreparedInit()
	defer func() {
		if exeCh != nil {
			(<-exeCh).prog.Close()
		}
	}()
	// So is the state directory (claiming the id), removed again if
	// config.json is refused.
	handleCh := make(chan madeHandle, 1)
	go func() {
		h, err := newHandle(o.Root, o.ID)
		handleCh <- madeHandle{h, err}
	}()
	defer func() {
		if handleCh != nil {
			if r := <-handleCh; r.h != nil {
				r.h.remove()
			}
		}
	}()
	// The init is started as soon as what its start needs is known (the
	// namespaces, the user namespace's mappings, a terminal): its exec and
	// Go start-up, about a millisecond, then overlap the decoding and
	// checking of the whole spec here. A spec that then fails the checks
	// kills it, and nothing is left behind.
	specPath := filepath.Join(bundle, "config.json")
	specJSON, start, err := readStartSpec(specPath)
	if err != nil {
		return nil, err
	}
	var namespaces []specs.LinuxNamespace
	if start.Linux != nil {
		namespaces = start.Linux.Namespaces
	}
	plan, err := planNamespaces(namespaces)
	if err != nil {
		return nil, err
	}
	if start.Process != nil && start.Process.Terminal {
		if o.ConsoleSocket == "" && o.LocalConsole != nil {
			if o.ConsoleSocket, err = o.LocalConsole(); err != nil {
				return nil, err
			}
		}
		if o.ConsoleSocket == "" {
			return nil, fmt.Errorf("%w: process.terminal is true: --console-socket is required", ErrInvalidSpec)
		}
	} else if o.ConsoleSocket != "" {
		return nil, fmt.Errorf("%w: --console-socket given but process.terminal is false", ErrInvalidSpec)
	}
	trace.Mark("start spec")
	made := <-handleCh
	handleCh = nil
	h, err := made.h, made.err
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var (
		mgr  cgroups.Manager
		pid  int
		cmd  *initCmd
		sync *os.File
		// earlyCgroup: the v2 group made before the init
		// (cgroups.PrepareUnified), removed on failure until mgr
		// owns it.
		earlyCgroup string
	)
	defer func() {
		if retErr == nil {
			return
		}
		if pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
			if cmd != nil {
				cmd.Wait()
			}
			waitGone(pid, h.Record.PidStart, 2*time.Second)
		}
		if mgr != nil {
			if err := mgr.Destroy(); err != nil {
				slog.Warn("destroy cgroup", "id", o.ID, "err", err)
			}
		} else if earlyCgroup != "" {
			if err := unix.Rmdir(earlyCgroup); err != nil && err != unix.ENOENT {
				slog.Warn("remove cgroup", "id", o.ID, "path", earlyCgroup, "err", err)
			}
		}
		h.remove()
	}()
	fifo := filepath.Join(h.Dir, fifoFile)
	if !o.StartNow {
		old := unix.Umask(0)
		err = unix.Mkfifo(fifo, 0o622)
		unix.Umask(old)
		if err != nil {
			return nil, fmt.Errorf("make exec fifo: %w", err)
		}
	}
	trace.Mark("fifo")

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	sync = os.NewFile(uintptr(fds[0]), "sync-parent")
	defer sync.Close()
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer child.Close()
	// Without a fifo (run), the sync socket takes its place, keeping the
	// fd numbers. An fd is never wrapped in two *os.File: the second's
	// finalizer would close a reused fd number in a long-lived caller
	// (hull-agent).
	fifoF := child
	if !o.StartNow {
		fifoFd, err := unix.Open(fifo, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		fifoF = os.NewFile(uintptr(fifoFd), "exec.fifo")
		defer fifoF.Close()
	}

	preserved, err := preservedFDs(o.PreserveFDs)
	if err != nil {
		return nil, err
	}
	defer closeFiles(preserved)
	extra := append([]*os.File(nil), preserved...)
	base := 3 + len(extra)
	extra = append(extra, child, fifoF)
	consoleFD := 0
	if o.ConsoleSocket != "" {
		cs, err := dialConsole(o.ConsoleSocket)
		if err != nil {
			return nil, err
		}
		defer cs.Close()
		consoleFD = 3 + len(extra)
		extra = append(extra, cs)
	}

	trace.Mark("sockets")
	// Joining namespaces (or making a time namespace) needs nsenter's C
	// constructor, which only hull-runtime itself has.
	needSelf := len(plan.joins) > 0 || plan.unshare != 0 || plan.joinPid
	pre := <-exeCh
	exeCh = nil
	initBin, err := pre.prog, pre.err
	if needSelf {
		pre.prog.Close()
		initBin, err = initExe(true)
	}
	if err != nil {
		return nil, err
	}
	defer initBin.Close()
	cmd = &initCmd{
		exe:   initBin.file,
		args:  initBin.args,
		Env:   initEnv(base),
		files: extra,
		stdio: [3]any{o.Stdin, o.Stdout, o.Stderr},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: plan.clone,
			Setsid:     true,
		},
	}
	cmd.Env = append(cmd.Env, trace.Env()...)
	if len(plan.joins) > 0 {
		cmd.Env = append(cmd.Env, initproc.EnvNsEnter+"="+joinList(plan.joins))
	}
	if plan.unshare != 0 {
		cmd.Env = append(cmd.Env, "_HULL_UNSHARE="+strconv.Itoa(plan.unshare))
	}
	if plan.newNS[specs.TimeNamespace] && len(start.Linux.TimeOffsets) > 0 {
		var off string
		for clock, o := range start.Linux.TimeOffsets {
			off += fmt.Sprintf("%s %d %d\n", clock, o.Secs, o.Nanosecs)
		}
		cmd.Env = append(cmd.Env, "_HULL_TIMENS_OFFSETS="+off)
	}
	if plan.joinPid {
		cmd.Env = append(cmd.Env, initproc.EnvSetsid+"=1")
	}
	if plan.newNS[specs.UserNamespace] {
		cmd.SysProcAttr.UidMappings = idMaps(start.Linux.UIDMappings)
		cmd.SysProcAttr.GidMappings = idMaps(start.Linux.GIDMappings)
		// Only a privileged runtime may allow setgroups(2) in the new
		// namespace: the kernel takes an unprivileged gid_map only after
		// "deny" (user_namespaces(7)).
		cmd.SysProcAttr.GidMappingsEnableSetgroups = os.Geteuid() == 0
		// Become root of the new user namespace before execve, so that
		// the init keeps its capabilities there.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	trace.Mark("init binary")
	// On a cgroup v2-only host the init is born in its cgroup
	// (clone3 CLONE_INTO_CGROUP) when the group can be made first.
	if !needSelf && !plan.newNS[specs.UserNamespace] {
		cg := ""
		if start.Linux != nil {
			cg = start.Linux.CgroupsPath
		}
		if dir, err := cgroups.PrepareUnified(cg, o.ID); err != nil {
			slog.Debug("cgroup v2 group ahead of the init", "err", err)
		} else if dir != "" {
			earlyCgroup = dir
			if fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
				defer unix.Close(fd)
				cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
			}
		}
	}
	err = cmd.Start()
	if err != nil && cmd.SysProcAttr.UseCgroupFD {
		// clone3 or CLONE_INTO_CGROUP refused (an older kernel, a
		// group the kernel will not start a process in): start as
		// usual, the runtime moves the init below.
		cmd.SysProcAttr.UseCgroupFD = false
		err = cmd.Start()
	}
	bornInCgroup := err == nil && cmd.SysProcAttr.UseCgroupFD
	if err != nil {
		if initBin.helper != "" {
			return nil, fmt.Errorf("start init %s: %w", initBin.helper, err)
		}
		return nil, fmt.Errorf("start init: %w", err)
	}
	pid = cmd.pid // killed by the deferred cleanup on error
	child.Close()
	trace.Mark("init started")

	// While the init starts: the whole spec.
	spec, err := decodeSpec(specPath, specJSON)
	if err != nil {
		return nil, err
	}
	rootfs, full, err := validate(spec, bundle)
	if err != nil {
		return nil, err
	}
	if full.clone != plan.clone || full.unshare != plan.unshare || joinList(full.joins) != joinList(plan.joins) {
		return nil, fmt.Errorf("%w: linux.namespaces read differently twice", ErrInvalidSpec) // cannot happen: same bytes
	}
	// What runc only warns about goes to the log (--log; not stderr,
	// which the container shares).
	for _, w := range caps.Warnings(spec.Process.Capabilities) {
		slog.Info("process.capabilities: " + w)
	}
	if spec.Linux != nil && spec.Linux.Seccomp != nil {
		if u := seccomp.UnknownSyscalls(spec.Linux.Seccomp); len(u) > 0 {
			slog.Info("linux.seccomp: syscalls unknown to this kernel/libseccomp are ignored", "syscalls", u)
		}
	}
	trace.Mark("validated")
	// The seccomp filter is compiled here, once per distinct profile
	// (cached on disk): the init only loads the program, one syscall.
	prog, err := compileSeccomp(spec)
	if err != nil {
		return nil, err
	}
	h.Record.Bundle = bundle
	h.Record.Rootfs = rootfs
	h.Record.Created = time.Now().UTC()
	h.Record.Annotations = spec.Annotations
	h.Record.Spec = spec
	h.Record.RawSpec = specJSON
	cgPath := ""
	if spec.Linux != nil {
		cgPath = spec.Linux.CgroupsPath
	}
	res := cgroups.ContainerResources(spec)
	var proc *specs.Process // nil: the spec's, decoded by the init
	if o.ListenFDs > 0 {
		p := *spec.Process
		p.Env = append(append([]string(nil), p.Env...), "LISTEN_FDS="+strconv.Itoa(o.ListenFDs), "LISTEN_PID=1")
		proc = &p
	}
	cfg := &initproc.Config{
		SpecJSON: specJSON, Process: proc, Rootfs: rootfs, Bundle: bundle,
		NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring,
		NewMountNS: plan.has[specs.MountNamespace], NewUserNS: plan.newNS[specs.UserNamespace],
		NewCgroupNS: plan.newNS[specs.CgroupNamespace], NewUTSNS: plan.newNS[specs.UTSNamespace],
		FifoFD: base + 1, PreserveFDs: o.PreserveFDs, Seccomp: prog, ConsoleSocketFD: consoleFD,
	}
	if o.StartNow {
		cfg.FifoFD = 0
	}
	if hk := spec.Hooks; hk != nil && (len(hk.Prestart) > 0 || len(hk.CreateRuntime) > 0) {
		cfg.RuntimeHooks = true
	}
	dec := json.NewDecoder(sync)
	if plan.joinPid {
		var m initproc.Message
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("init: %w", initExitErr(cmd, err))
		}
		if m.Type == initproc.MsgError {
			cmd.Wait()
			return nil, fmt.Errorf("linux.namespaces: %s", m.Msg)
		}
		if m.Type != initproc.MsgPid || m.Pid <= 0 {
			return nil, fmt.Errorf("init: unexpected %q message", m.Type)
		}
		cmd.Wait()
		pid = m.Pid
		cmd = nil
	}
	h.Record.Pid = pid
	// The config goes first: the init decodes it and builds the rootfs
	// while the cgroup is made here, then waits for MsgCgroupDone.
	st := h.SpecState(Creating)
	cfg.State = &st
	if err := sendMsg(sync, initproc.Message{Type: initproc.MsgConfig, Config: cfg}); err != nil {
		return nil, fmt.Errorf("send config to init: %w", err)
	}
	if h.Record.PidStart, _, err = procStart(pid); err != nil {
		return nil, fmt.Errorf("init exited at once: %w", err)
	}
	mgr, err = cgroups.New(cgPath, o.ID, res)
	if err != nil {
		return nil, fmt.Errorf("linux.cgroupsPath %q: %w", cgPath, err)
	}
	h.Record.CgroupPath = cgPath
	// The init moves itself into the v1 hierarchies on MsgCgroupDone
	// (see initproc.Message.CgroupTasks), unless namespaces it joined
	// change what the paths name or a new user namespace may lack the
	// rights on the host's cgroup files.
	var tasks []string
	if len(plan.joins) == 0 && plan.unshare == 0 && !plan.newNS[specs.UserNamespace] {
		if tasks, err = mgr.Prepare(); err != nil {
			return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
		}
	}
	trace.Mark("cgroup prepared")
	// Saved once here (with the cgroup paths, all a delete after a
	// crash needs) and once when ready (with the resources): other CLI
	// calls wait on the lock until then.
	if h.Record.Cgroup, err = json.Marshal(cgState{Paths: mgr.Paths()}); err != nil {
		return nil, err
	}
	if err := h.Save(); err != nil {
		return nil, err
	}
	if len(tasks) > 0 {
		if err := mgr.JoinUnified(pid); err != nil {
			return nil, fmt.Errorf("linux.cgroupsPath: join cgroup: %w", err)
		}
	} else if bornInCgroup && mgr.Paths()[""] == earlyCgroup {
		// Born in it (clone3 CLONE_INTO_CGROUP).
	} else {
		if err := mgr.Apply(pid); err != nil {
			if !rootlessWithoutCgroup(spec, err) {
				return nil, fmt.Errorf("linux.cgroupsPath: join cgroup: %w", err)
			}
			slog.Info("rootless: running without a cgroup", "err", err)
			if err := mgr.Destroy(); err != nil {
				slog.Debug("destroy cgroup", "err", err)
			}
			mgr = nil
			h.Record.Cgroup = nil
		}
		trace.Mark("cgroup applied")
	}
	if mgr != nil {
		if err := mgr.Set(res); err != nil {
			return nil, fmt.Errorf("linux.resources: %w", err)
		}
		trace.Mark("cgroup set")
		if h.Record.Cgroup, err = json.Marshal(cgState{Paths: mgr.Paths(), Resources: mgr.Resources()}); err != nil {
			return nil, err
		}
	}
	if spec.Linux != nil && len(spec.Linux.NetDevices) > 0 {
		if err := moveNetDevices(pid, spec.Linux.NetDevices); err != nil {
			return nil, err
		}
	}
	if err := sendMsg(sync, initproc.Message{Type: initproc.MsgCgroupDone, CgroupTasks: tasks}); err != nil {
		// The init failed meanwhile: its report says why.
		var m initproc.Message
		if dec.Decode(&m) == nil && m.Type == initproc.MsgError {
			return nil, errors.New(m.Msg)
		}
		return nil, fmt.Errorf("container init: %w", err)
	}
	for {
		var m initproc.Message
		if err := dec.Decode(&m); err != nil {
			return nil, initExitErr(cmd, err)
		}
		switch m.Type {
		case initproc.MsgError:
			return nil, errors.New(m.Msg)
		case initproc.MsgSeccomp:
			if err := relayListener(ctx, sync, spec, pid, st); err != nil {
				return nil, err
			}
			continue
		case initproc.MsgHooks:
			if err := hooks.Run(ctx, "prestart", spec.Hooks.Prestart, &st); err != nil {
				return nil, err
			}
			if err := hooks.Run(ctx, "createRuntime", spec.Hooks.CreateRuntime, &st); err != nil {
				return nil, err
			}
			if err := sendMsg(sync, initproc.Message{Type: initproc.MsgHooksDone}); err != nil {
				return nil, err
			}
			continue
		case initproc.MsgReady:
		default:
			return nil, fmt.Errorf("init sent unexpected %q", m.Type)
		}
		break
	}
	trace.Mark("init ready")
	// Saved while a `run` init execve's (nobody reads the state before
	// Create returns: the lock is held; on a failure below everything
	// is removed).
	h.Record.Creating = false
	if err := h.Save(); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, pid); err != nil {
			return nil, err
		}
	}
	if o.StartNow {
		// The init runs the startContainer hooks and execve's; the
		// socket closes (close-on-exec) when it has.
		var m initproc.Message
		if err := dec.Decode(&m); err == nil && m.Type == initproc.MsgError {
			return nil, errors.New(m.Msg)
		} else if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("container init: %w", err)
		}
	}
	hasPoststart := spec.Hooks != nil && len(spec.Hooks.Poststart) > 0
	p := &Process{Pid: pid, HasPoststart: hasPoststart}
	var dst unix.Stat_t
	if unix.Fstat(int(h.lock.Fd()), &dst) == nil {
		p.created = &createdState{dir: h.Dir, dirDev: dst.Dev, dirIno: dst.Ino, rec: h.Record, mgr: mgr, ownPidNS: plan.newNS[specs.PIDNamespace]}
	}
	return p, nil
}

// madeHandle is the outcome of a newHandle made ahead.
type madeHandle struct {
	h   *Handle
	err error
}

// preparedExe is the outcome of an initExe made ahead.
type preparedExe struct {
	prog *initProgram
	err  error
}

// rootlessWithoutCgroup reports whether an unprivileged runtime that was
// refused the cgroup (err) may run the container without one: as runc
// does, when the spec asks for no resource limits (a rootless spec has
// none). With limits, the refusal is an error.
func rootlessWithoutCgroup(spec *specs.Spec, err error) bool {
	if os.Geteuid() == 0 || !errors.Is(err, fs.ErrPermission) {
		return false
	}
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return true
	}
	r := *spec.Linux.Resources
	r.Devices = nil // the device rules are the v1 controller's defaults
	return reflect.ValueOf(r).IsZero()
}

// preservedFDs are duplicates of the caller's fds 3..3+n-1 (--preserve-fds)
// for the init: the caller's own fds may belong to *os.File values of its
// own, and a second wrapper's finalizer would close them.
func preservedFDs(n int) ([]*os.File, error) {
	var out []*os.File
	for i := 0; i < n; i++ {
		fd, err := unix.FcntlInt(uintptr(3+i), unix.F_DUPFD_CLOEXEC, 3+n)
		if err != nil {
			closeFiles(out)
			return nil, fmt.Errorf("--preserve-fds: fd %d: %w", 3+i, err)
		}
		out = append(out, os.NewFile(uintptr(fd), "preserved"))
	}
	return out, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

type cgState struct {
	Paths     map[string]string     `json:"paths"`
	Resources *specs.LinuxResources `json:"resources,omitempty"`
}

func joinList(j []string) string {
	s := ""
	for i, v := range j {
		if i > 0 {
			s += ","
		}
		s += v
	}
	return s
}

func idMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, v := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(v.ContainerID), HostID: int(v.HostID), Size: int(v.Size)}
	}
	return out
}

func sendMsg(w io.Writer, m initproc.Message) error {
	if m.Config != nil {
		if err := m.Config.EncodeSpec(); err != nil {
			return err
		}
	}
	data, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// initExitErr explains an init that closed the sync socket without a
// message.
func initExitErr(cmd interface{ Wait() error }, err error) error {
	if cmd != nil && !reflect.ValueOf(cmd).IsNil() && errors.Is(err, io.EOF) {
		if werr := cmd.Wait(); werr != nil {
			return fmt.Errorf("container init exited without a report: %w", werr)
		}
	}
	return fmt.Errorf("container init: %w", err)
}

func dialConsole(path string) (*os.File, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("--console-socket %s: %w", path, err)
	}
	defer c.Close()
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		return nil, err
	}
	return f, nil
}

func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}

// waitGone waits until pid (started at start) has exited (or is a
// zombie), up to timeout.
func waitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for d := time.Millisecond; ; d = min(d*2, 50*time.Millisecond) {
		s, zombie, err := procStart(pid)
		if err != nil || zombie || (start != 0 && s != start) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(d)
	}
}

// initEnv is the environment of `hull-runtime init` (never the
// process's: that comes from the spec at execve). One P and no GC keep
// the short-lived init cheap; the runtime's original timer slack goes
// back on the thread that execve's the container's process.
func initEnv(syncFD int) []string {
	return append([]string{initproc.EnvSyncFD + "=" + strconv.Itoa(syncFD), initProtocolEnv(), "GOMAXPROCS=1", "GOGC=off"}, timerslack.ChildEnv()...)
}

// SeccompCacheDir holds compiled seccomp programs (see seccomp.Cache).
const SeccompCacheDir = "/run/hull-runtime.cache/seccomp"

func compileSeccomp(spec *specs.Spec) (*seccomp.Program, error) {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return nil, nil
	}
	if err := os.MkdirAll(SeccompCacheDir, 0o700); err != nil {
		slog.Debug("seccomp cache", "err", err)
	}
	cache, err := seccompCache()
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	prog, err := cache.Compile(spec.Linux.Seccomp)
	if err != nil {
		return nil, fmt.Errorf("%w: linux.seccomp: %w", ErrInvalidSpec, err)
	}
	return prog, nil
}

// SetTraceSink hands every step mark of this process's runtime calls
// (create, start, delete: "rt: <step>") to f as well, set once before the
// first call. hull-agent records them in its guest trace, so the vm
// benchmark of guest steps shows where a container create in the guest goes.
func SetTraceSink(f func(step string)) { trace.SetSink(f) }
