package qemu

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"

	"github.com/hullproject/hull/agent/vsock"
	"github.com/hullproject/hull/vm"
)

// vhostVsockDevice is the host device a vsock agent channel needs (a
// variable for tests).
var vhostVsockDevice = vm.VhostVsockDevice

// vsockState is one VM's agent transport: vsock with a claimed guest CID,
// or virtio-serial (the port every QEMU guest gets anyway).
type vsockState struct {
	transport vm.AgentTransport
	reason    string
	cid       *vm.GuestCID
}

// vsocks holds the vsock state of started VMs, by driver value.
var vsocks sync.Map // *QEMU → *vsockState

// HostHasVsock reports whether this host can give QEMU guests a vsock
// agent channel (vhost-vsock opens).
func HostHasVsock() bool {
	t, _ := vm.SelectTransport(vhostVsockDevice)
	return t == vm.TransportVsock
}

// vsockDevice is the -device value of a vhost-vsock device whose CID is
// held by the vhost fd fd.
func vsockDevice(machine string, cid uint32, fd int) string {
	dev := "vhost-vsock-pci"
	if machine == "microvm" {
		dev = "vhost-vsock-device"
	}
	return dev + ",id=vsock0,guest-cid=" + strconv.FormatUint(uint64(cid), 10) + ",vhostfd=" + strconv.Itoa(fd)
}

// attachVsock chooses the agent transport of the VM cmd will run: when
// /dev/vhost-vsock opens and a guest CID can be claimed on it, a
// vhost-vsock device (the claimed fd passed to QEMU) is added to cmd; else
// the agent stays on virtio-serial and a log line says why. The guest
// serves on both when both are there; the host dials vsock.
func (q *QEMU) attachVsock(cmd *exec.Cmd, cfg *vm.Config) error {
	st := &vsockState{}
	st.transport, st.reason = vm.SelectTransport(vhostVsockDevice)
	if st.transport == vm.TransportVsock {
		cid, err := vm.AllocateCID(vhostVsockDevice)
		if err != nil {
			st.transport, st.reason = vm.TransportSerial, fmt.Sprintf("no guest CID: %v", err)
		} else {
			st.cid = cid
			fd := 3 + len(cmd.ExtraFiles)
			cmd.ExtraFiles = append(cmd.ExtraFiles, cid.File)
			arg := []string{"-device", vsockDevice(machine(cfg), cid.CID, fd)}
			cmd.Args = append(cmd.Args, arg...)
			q.mu.Lock()
			q.args = append(q.args, arg...)
			q.mu.Unlock()
			st.reason = fmt.Sprintf("%s, guest CID %d", st.reason, cid.CID)
		}
	}
	vm.LogTransport(q.opts.Logger, cfg.ID, st.transport, st.reason)
	vsocks.Store(q, st)
	return nil
}

// detachVsock releases the VM's guest CID.
func (q *QEMU) detachVsock() {
	if v, ok := vsocks.LoadAndDelete(q); ok {
		v.(*vsockState).cid.Close()
	}
}

func (q *QEMU) vsockState() *vsockState {
	if v, ok := vsocks.Load(q); ok {
		return v.(*vsockState)
	}
	return &vsockState{transport: vm.TransportSerial}
}

// AgentTransport implements vm.AgentDialer.
func (q *QEMU) AgentTransport() vm.AgentTransport { return q.vsockState().transport }

// DialAgent implements vm.AgentDialer: vsock to the guest's CID (retried
// until the agent listens), else the virtio-serial port's unix socket.
func (q *QEMU) DialAgent(ctx context.Context) (net.Conn, error) {
	st := q.vsockState()
	if st.transport == vm.TransportVsock && st.cid != nil {
		return vsock.Dial(ctx, st.cid.CID, vsock.Port)
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", q.AgentSocket())
}
