package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/cgroups"
	"github.com/hullproject/hull/runtime/initproc"
)

// ExecOptions are `exec`'s settings.
type ExecOptions struct {
	Root, ID      string
	Process       *specs.Process
	ConsoleSocket string
	PidFile       string
	PreserveFDs   int
	Stdin         io.Reader
	Stdout        io.Writer
	Stderr        io.Writer
}

// Exec runs an extra process in a created or running container: it joins
// every namespace of the container (nsenter), its cgroup, and gets the
// process's user, capabilities, AppArmor profile, no_new_privs, rlimits
// and the container's seccomp filter. It returns once the process has
// execve'd (or with the error that stopped it).
func Exec(ctx context.Context, o ExecOptions) (*Process, error) {
	h, err := Load(o.Root, o.ID)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	switch st := h.Status(); st {
	case Created, Running:
	default:
		return nil, fmt.Errorf("exec in %s: container is %s: %w", o.ID, st, ErrNotRunning)
	}
	if o.Process == nil || len(o.Process.Args) == 0 {
		return nil, fmt.Errorf("%w: process.args must not be empty", ErrInvalidSpec)
	}
	if err := validateProcess(o.Process); err != nil {
		return nil, err
	}
	spec, err := h.FullSpec()
	if err != nil {
		return nil, err
	}
	var joins []string
	joinPid := false
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			t := nsTypes[ns.Type]
			if t.proc == "" {
				continue
			}
			p := "/proc/" + strconv.Itoa(h.Record.Pid) + "/ns/" + t.proc
			if same, _ := sameNS(p, "/proc/self/ns/"+t.proc); same {
				continue
			}
			e := t.proc + ":" + p
			if ns.Type == specs.UserNamespace {
				joins = append([]string{e}, joins...)
			} else {
				joins = append(joins, e)
			}
			if ns.Type == specs.PIDNamespace || ns.Type == specs.TimeNamespace {
				joinPid = true
			}
		}
	}
	mgr, err := h.cgroup()
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	sync := os.NewFile(uintptr(fds[0]), "sync-parent")
	defer sync.Close()
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer child.Close()
	preserved, err := preservedFDs(o.PreserveFDs)
	if err != nil {
		return nil, err
	}
	defer closeFiles(preserved)
	extra := append([]*os.File(nil), preserved...)
	base := 3 + len(extra)
	extra = append(extra, child)
	prog, err := compileSeccomp(spec)
	if err != nil {
		return nil, err
	}
	cfg := &initproc.Config{Exec: true, Spec: spec, Process: o.Process, PreserveFDs: o.PreserveFDs, Seccomp: prog}
	if o.Process.Terminal {
		if o.ConsoleSocket == "" {
			return nil, fmt.Errorf("%w: process.terminal is true: --console-socket is required", ErrInvalidSpec)
		}
		cs, err := dialConsole(o.ConsoleSocket)
		if err != nil {
			return nil, err
		}
		defer cs.Close()
		cfg.ConsoleSocketFD = 3 + len(extra)
		extra = append(extra, cs)
	}
	initBin, err := initExe(len(joins) > 0 || joinPid)
	if err != nil {
		return nil, err
	}
	defer initBin.Close()
	cmd := &initCmd{
		exe:         initBin.file,
		args:        initBin.args,
		Env:         initEnv(base),
		files:       extra,
		stdio:       [3]any{o.Stdin, o.Stdout, o.Stderr},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if len(joins) > 0 {
		cmd.Env = append(cmd.Env, initproc.EnvNsEnter+"="+joinList(joins))
	}
	if joinPid {
		cmd.Env = append(cmd.Env, initproc.EnvSetsid+"=1")
	}
	// The process is born in the container's cgroup on the v1
	// hierarchies (startInCgroup: through the forking thread). On v2 it
	// is moved there below, before it gets its config and so before the
	// container's process runs: not clone3(CLONE_INTO_CGROUP) as Create
	// does. With it, about one exec in 15-40 into a running container in
	// a Hull guest (kernel 6.1) never saw EOF on its stdin pipe: after
	// CloseStdin no process had the pipe's write end open, yet the reader
	// slept in pipe_read for good (agent TestExecSignalStdinStats, 0 in 70
	// without it). The cause in the kernel is not found; a move costs one
	// write to cgroup.procs.
	var tasks []string
	v2ok := true
	if mgr != nil {
		paths := mgr.Paths()
		if v2 := paths[""]; v2 != "" {
			delete(paths, "")
			v2ok = false
		}
		tasks = cgroups.SelfJoinFiles(paths)
	}
	joined, err := startInCgroup(cmd, tasks)
	if err != nil {
		return nil, fmt.Errorf("start exec init: %w", err)
	}
	joined = joined && v2ok
	child.Close()
	pid := cmd.pid
	dec := json.NewDecoder(sync)
	fail := func(err error) (*Process, error) {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
		return nil, err
	}
	if joinPid {
		var m initproc.Message
		if err := dec.Decode(&m); err != nil {
			return fail(initExitErr(cmd, err))
		}
		cmd.Wait()
		if m.Type == initproc.MsgError {
			return nil, errors.New(m.Msg)
		}
		pid = m.Pid
	}
	if mgr != nil && !joined {
		if err := mgr.Join(pid); err != nil {
			return fail(fmt.Errorf("join container cgroup: %w", err))
		}
	}
	if err := sendMsg(sync, initproc.Message{Type: initproc.MsgConfig, Config: cfg}); err != nil {
		return fail(err)
	}
	// The init closes its end (close-on-exec) when execve succeeds.
	for {
		var m initproc.Message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		if m.Type == initproc.MsgSeccomp {
			st := h.SpecState(Running)
			if err := relayListener(ctx, sync, spec, pid, st); err != nil {
				return fail(err)
			}
			continue
		}
		if m.Type == initproc.MsgError {
			unix.Kill(pid, unix.SIGKILL)
			return nil, errors.New(m.Msg)
		}
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, pid); err != nil {
			return nil, err
		}
	}
	return &Process{Pid: pid}, nil
}

func sameNS(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
