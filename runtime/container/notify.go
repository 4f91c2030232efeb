package container

import (
	"context"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/initproc"
	"github.com/hullproject/hull/runtime/seccomp"
)

// relayListener receives the seccomp listener fd the init sends after
// MsgSeccomp and hands it to the profile's listenerPath (runtime-spec
// config-linux.md, "seccomp": the container process state with the fd).
func relayListener(ctx context.Context, sync *os.File, spec *specs.Spec, pid int, state specs.State) error {
	if err := sendMsg(sync, initproc.Message{Type: initproc.MsgSeccompAck}); err != nil {
		return err
	}
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sync.Fd()), buf, oob, 0)
	if err != nil {
		return fmt.Errorf("linux.seccomp: receive listener fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("linux.seccomp: no listener fd from the init")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("linux.seccomp: no listener fd from the init")
	}
	fd := os.NewFile(uintptr(fds[0]), "seccomp-listener")
	defer fd.Close()
	sc := spec.Linux.Seccomp
	if err := seccomp.SendListener(ctx, sc.ListenerPath, fd, specs.ContainerProcessState{
		Pid: pid, Metadata: sc.ListenerMetadata, State: state,
	}); err != nil {
		return err
	}
	return sendMsg(sync, initproc.Message{Type: initproc.MsgSeccompDone})
}
