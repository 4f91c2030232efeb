package seccomp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ListenerFdName is the name of the listener fd in ContainerProcessState.Fds.
const ListenerFdName = "seccompFd"

// SendListener hands a seccomp listener fd to the agent at path (the
// profile's listenerPath), as the runtime spec describes: it connects to
// the unix socket and sends state as JSON with the fd attached (SCM_RIGHTS)
// in one message. state.Fds is set to ["seccompFd"]. The runtime process
// calls it after the container init sent it the fd from LoadNotify; pass
// the profile's listenerMetadata in state.Metadata and the container's
// state in state.State. The fd stays open; the caller closes it.
func SendListener(ctx context.Context, path string, fd *os.File, state specs.ContainerProcessState) error {
	if path == "" {
		return fmt.Errorf("linux.seccomp.listenerPath is empty: %w", ErrInvalid)
	}
	if fd == nil {
		return fmt.Errorf("send seccomp listener to %s: no listener fd: %w", path, ErrInvalid)
	}
	if state.Version == "" {
		state.Version = specs.Version
	}
	state.Fds = []string{ListenerFdName}
	data, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode seccomp state: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("connect to seccomp listenerPath %s: %w", path, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		_ = uc.SetDeadline(dl)
	}
	oob := unix.UnixRights(int(fd.Fd()))
	n, oobn, err := uc.WriteMsgUnix(data, oob, nil)
	if err != nil {
		return fmt.Errorf("send seccomp state to %s: %w", path, err)
	}
	if n != len(data) || oobn != len(oob) {
		return fmt.Errorf("send seccomp state to %s: short write (%d of %d bytes)", path, n, len(data))
	}
	return nil
}
