package qemu

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullproject/hull/vm"
)

func TestVsockDevice(t *testing.T) {
	if got := vsockDevice("microvm", 7, 4); got != "vhost-vsock-device,id=vsock0,guest-cid=7,vhostfd=4" {
		t.Errorf("microvm: %s", got)
	}
	if got := vsockDevice("q35", 1234, 3); got != "vhost-vsock-pci,id=vsock0,guest-cid=1234,vhostfd=3" {
		t.Errorf("q35: %s", got)
	}
}

// TestVsockFallback: without a usable /dev/vhost-vsock the agent stays on
// virtio-serial, QEMU gets no vsock device, and a log line says why.
func TestVsockFallback(t *testing.T) {
	dir := t.TempDir()
	notDevice := filepath.Join(dir, "regular-file")
	os.WriteFile(notDevice, nil, 0o600)
	for _, tc := range []struct {
		name, dev, why string
	}{
		{"missing", filepath.Join(dir, "vhost-vsock"), "does not exist"},
		{"opens but claims no CID", notDevice, "no guest CID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := vhostVsockDevice
			vhostVsockDevice = tc.dev
			defer func() { vhostVsockDevice = old }()
			var logs bytes.Buffer
			q := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			q.paths = pathsFor(&vm.Config{StateDir: dir})
			cmd := exec.Command("qemu-system-x86_64", "-name", "x")
			if err := q.attachVsock(cmd, &vm.Config{ID: "vs1", StateDir: dir}); err != nil {
				t.Fatal(err)
			}
			defer q.detachVsock()
			if len(cmd.Args) != 3 || len(cmd.ExtraFiles) != 0 {
				t.Errorf("QEMU got a vsock device: %v, %d files", cmd.Args, len(cmd.ExtraFiles))
			}
			if q.AgentTransport() != vm.TransportSerial || vm.TransportOf(q) != vm.TransportSerial {
				t.Errorf("transport %s", q.AgentTransport())
			}
			l := logs.String()
			if !strings.Contains(l, "agent channel: virtio-serial, not vsock") || !strings.Contains(l, tc.why) || !strings.Contains(l, "vm=vs1") {
				t.Errorf("log %q lacks the reason %q", l, tc.why)
			}
			// DialAgent reaches the virtio-serial socket.
			ln, err := net.Listen("unix", q.AgentSocket())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := q.DialAgent(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
}

// TestVsockAttach claims a real CID and adds the device (hosts with
// vhost-vsock only).
func TestVsockAttach(t *testing.T) {
	if !HostHasVsock() {
		_, reason := vm.SelectTransport(vhostVsockDevice)
		t.Skipf("no vsock on this host: %s", reason)
	}
	q := New(Options{})
	cmd := exec.Command("qemu-system-x86_64")
	if err := q.attachVsock(cmd, &vm.Config{ID: "vs2"}); err != nil {
		t.Fatal(err)
	}
	defer q.detachVsock()
	if q.AgentTransport() != vm.TransportVsock || len(cmd.ExtraFiles) != 1 || !strings.Contains(strings.Join(cmd.Args, " "), "vhost-vsock-device,id=vsock0,guest-cid=") {
		t.Errorf("transport %s, args %v", q.AgentTransport(), cmd.Args)
	}
}
