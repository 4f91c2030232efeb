package firecracker

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/accel"
	"github.com/hullproject/hull/vm/vmtest"
)

// TestRealBoot boots Hull's guest under a real Firecracker (PATH or
// $HULL_FIRECRACKER) with a directory attached as an ext4 drive, and talks
// to the agent over the hybrid vsock.
func TestRealBoot(t *testing.T) {
	if os.Getenv("HULL_FAKE_FC") != "" {
		t.Skip("fake mode")
	}
	bin, err := LookPath(Options{})
	if err != nil {
		t.Skipf("firecracker not installed: %v", err)
	}
	ctx := context.Background()
	if r := accel.Detect(ctx, accel.Options{}); r.Accel != accel.KVM {
		t.Skipf("firecracker needs a usable KVM: %s", r.Reason)
	}
	needMkfsExt4(t)
	cfg := vm.Config{
		ID: "fc-real", StateDir: t.TempDir(), Kernel: vmtest.Kernel(t), Initrd: vmtest.Initramfs(t),
		VCPUs: 1, MemoryMiB: 256, Shares: []vm.Share{{Tag: "hullfs", Source: t.TempDir()}},
	}
	h := New(Options{Binary: bin})
	sb, err := vm.Boot(ctx, h, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent %s answered after %s", sb.Version.GetAgentVersion(), sb.Ready.Sub(sb.StartedAt))
	if err := sb.Shutdown(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	noStrays(t, h, cfg.StateDir)
}
