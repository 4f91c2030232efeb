package initproc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupUser switches this thread to the process user (uid, gid, the
// groups of /etc/group plus additionalGids), keeping capabilities for
// applyCaps, and returns the environment with HOME filled in. Only the
// locked thread changes: it is the one that execve's.
func setupUser(p *specs.Process) ([]string, error) {
	u := p.User
	def := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUserPath(fmt.Sprintf("%d:%d", u.UID, u.GID), def, "/etc/passwd", "/etc/group")
	if err != nil {
		return nil, fmt.Errorf("process.user (%d:%d): %w", u.UID, u.GID, err)
	}
	groups := append([]int(nil), eu.Sgids...)
	for _, g := range u.AdditionalGids {
		groups = append(groups, int(g))
	}
	if err := setgroups(groups); err != nil {
		// A user namespace with setgroups "deny" allows no change.
		if !(errors.Is(err, unix.EPERM) && len(groups) == 0) {
			return nil, fmt.Errorf("process.user.additionalGids %v: %w", groups, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("keep capabilities: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(eu.Gid), uintptr(eu.Gid), uintptr(eu.Gid)); e != 0 {
		return nil, fmt.Errorf("process.user.gid %d: %w", eu.Gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(eu.Uid), uintptr(eu.Uid), uintptr(eu.Uid)); e != 0 {
		return nil, fmt.Errorf("process.user.uid %d: %w", eu.Uid, e)
	}
	env := append([]string(nil), p.Env...)
	hasHome := false
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			hasHome = true
		}
	}
	if !hasHome {
		env = append(env, "HOME="+eu.Home)
	}
	return env, nil
}

func setgroups(gids []int) error {
	var ptr uintptr
	g := make([]uint32, len(gids))
	for i, v := range gids {
		g[i] = uint32(v)
	}
	if len(g) > 0 {
		ptr = uintptrOf(g)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(g)), ptr, 0); e != 0 {
		return e
	}
	return nil
}
