package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/vmtest"
)

// TestQuit: Sandbox.Quit ends a booted VM with a virtio-fs share through
// QMP quit, as Kata does once the agent removed the containers: the guest
// does not power off (the console has no "Power down"), the end is a clean
// one, virtiofsd (started on the driver's own listening socket) goes with
// QEMU, and no socket or process is left. A second Quit, and a Stop after
// it, are no-ops.
func TestQuit(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := baseConfig(t)
	share := t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Shares = []vm.Share{{Tag: "quitfs", Source: share}}
	q := newTCG()
	sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(vmtest.Children()) < 2 {
		t.Fatalf("want QEMU and virtiofsd running, found %v", vmtest.Children())
	}
	if err := sb.Quit(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.Done():
	default:
		t.Fatal("Quit returned before QEMU ended")
	}
	if err := q.Wait(); err != nil {
		t.Fatalf("wait after quit: %v", err)
	}
	if b, _ := os.ReadFile(q.ConsolePath()); strings.Contains(string(b), "reboot: Power down") {
		t.Errorf("the guest powered off; Quit should end QEMU without it:\n%s", vm.ConsoleTail(q.ConsolePath(), 10))
	}
	for _, f := range []string{"qmp.sock", "agent.sock", "fs0.sock"} {
		if _, err := os.Stat(filepath.Join(cfg.StateDir, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
	if left := vmtest.Children(); len(left) > 0 {
		t.Errorf("processes left when Quit returned: %v", left)
	}
	if err := q.Quit(context.Background()); err != nil {
		t.Errorf("second Quit: %v", err)
	}
	if err := q.Stop(context.Background()); err != nil {
		t.Errorf("Stop after Quit: %v", err)
	}
}
