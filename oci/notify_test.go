//go:build cgo

package oci_test

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/runtime/seccomp"
)

// agent is a minimal seccomp agent: it accepts one connection on sock,
// reads the container process state with the listener fd, and answers
// every notification with EBUSY until the fd closes.
func agent(t *testing.T, sock string) <-chan specs.ContainerProcessState {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	states := make(chan specs.ContainerProcessState, 1)
	go func() {
		defer close(states)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		buf, oob := make([]byte, 8192), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		c.Close()
		if err != nil {
			return
		}
		var st specs.ContainerProcessState
		if json.Unmarshal(buf[:n], &st) != nil {
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		if len(fds) != 1 {
			return
		}
		states <- st
		defer unix.Close(fds[0])
		for {
			req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(fds[0]))
			if err != nil {
				return // the container is gone
			}
			_ = libseccomp.NotifRespond(libseccomp.ScmpFd(fds[0]), &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EBUSY)})
		}
	}()
	return states
}

// TestSeccompNotifyUnderRuntimes runs a container whose mkdir is handed
// to a seccomp agent, under runc and hull-runtime, and checks the message
// each runtime sends has the shape seccomp.SendListener sends (fds
// ["seccompFd"], metadata, the "creating" state), so that agents written
// for runc work with Hull.
func TestSeccompNotifyUnderRuntimes(t *testing.T) {
	runtimes(t, func(t *testing.T, rt string) {
		sock := filepath.Join(t.TempDir(), "agent.sock")
		states := agent(t, sock)
		s, err := oci.NewSpec("test", "x", oci.WithSeccompProfile(&specs.LinuxSeccomp{
			DefaultAction:    specs.ActAllow,
			ListenerPath:     sock,
			ListenerMetadata: "hull-test",
			Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
		}))
		if err != nil {
			t.Fatal(err)
		}
		out := runIn(t, rt, s, "sh", "-c", "mkdir /tmp/x; echo mkdir=$?")
		if !strings.Contains(out, "mkdir=1") || !strings.Contains(out, "resource busy") {
			t.Errorf("the agent's EBUSY did not reach the container:\n%s", out)
		}
		st, ok := <-states
		if !ok {
			t.Fatal("the agent received no state")
		}
		if fmt.Sprint(st.Fds) != "["+seccomp.ListenerFdName+"]" || st.Metadata != "hull-test" ||
			st.State.Status != specs.StateCreating || st.Pid <= 0 || st.State.Pid != st.Pid || st.Version == "" {
			t.Errorf("the state differs in shape from SendListener's: %+v", st)
		}
	})
}
