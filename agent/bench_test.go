package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/bootcheck"
	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
	"github.com/hullproject/hull/vm/qemu"
	"github.com/hullproject/hull/vm/vmtest"
)

// BenchmarkVMRunTrue measures, from QEMU's start, when the agent answers
// and when a /bin/true container started through it has exited (rootfs
// over virtio-fs, Hull's kernel via PVH, TCG, 1 vCPU, 256 MiB), next to
// the bare boot floor of the same kernel and machine with a trivial init
// that powers off; and the summed PSS of QEMU + virtiofsd for the idle VM
// after the container exited. Run: make bench-vm.
func BenchmarkVMRunTrue(b *testing.B) {
	testutil.RequireRoot(b)
	kernel := vmtest.Kernel(b)
	rd := vmtest.Initramfs(b)
	bundle := testutil.NewBundle(b, "/bin/true")
	floorRd := filepath.Join(b.TempDir(), "testinit.cpio")
	if err := initramfs.WriteFile(floorRd, initramfs.Spec{Init: guesttest.BuildTestInit(b, b.TempDir()), Compression: initramfs.Gzip}); err != nil {
		b.Fatal(err)
	}
	var ready, exited, floor, guestUp, create, run time.Duration
	var pssKiB int64
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		// The floor: QEMU start to the init's marker, bare.
		res, err := bootcheck.Boot(ctx, bootcheck.Config{Kernel: kernel, Initrd: floorRd, Marker: guest.TestInitMarker, Timeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		floor += res.MarkerAt

		cfg := vm.Config{ID: "bench", StateDir: b.TempDir(), Kernel: kernel, Initrd: rd, VCPUs: 1, MemoryMiB: 256,
			Shares: []vm.Share{{Tag: shareTag, Source: bundle.Dir}}}
		tb, _ := strconv.Atoi(os.Getenv("HULL_VM_TB_SIZE"))
		if m, _ := strconv.Atoi(os.Getenv("HULL_VM_MEM")); m > 0 {
			cfg.MemoryMiB = m
		}
		cfg.KernelParams = os.Getenv("HULL_VM_APPEND")
		q := qemu.New(qemu.Options{Accel: "tcg", TBSizeMiB: tb})
		sb, err := vm.Boot(ctx, q, cfg, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		ready += sb.Ready.Sub(sb.StartedAt)
		// The guest's CLOCK_BOOTTIME when the agent served: kernel boot
		// plus the agent's PID-1 setup.
		guestUp += time.Duration(sb.Version.BootNs)
		c := sb.Agent
		t0 := time.Now()
		if _, err := c.CreateContainer(ctx, createReq(b, "t", bundle)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		create += t1.Sub(t0)
		if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "t"}); err != nil {
			b.Fatal(err)
		}
		w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "t"})
		if err != nil || w.Status != 0 {
			b.Fatalf("wait: %v status %d", err, w.GetStatus())
		}
		exited += time.Since(sb.StartedAt)
		run += time.Since(t1)
		if i == 0 {
			time.Sleep(2 * time.Second) // idle
			pids := append([]int{q.Pid()}, vmtest.Children()...)
			if pssKiB, err = vmtest.PSSKiB(pids...); err != nil {
				b.Fatal(err)
			}
		}
		if err := sb.Shutdown(ctx, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		vmtest.NoStrays(b)
	}
	n := float64(b.N)
	b.ReportMetric(floor.Seconds()*1000/n, "floor-ms")
	b.ReportMetric(ready.Seconds()*1000/n, "agent-ready-ms")
	b.ReportMetric(exited.Seconds()*1000/n, "true-exited-ms")
	b.ReportMetric(float64(exited)/float64(floor), "x-floor")
	b.ReportMetric(guestUp.Seconds()*1000/n, "guest-boottime-at-agent-ms")
	b.ReportMetric(create.Seconds()*1000/n, "create-ms")
	b.ReportMetric(run.Seconds()*1000/n, "start-to-exit-ms")
	b.ReportMetric(float64(pssKiB)/1024, "idle-pss-MiB")
	b.ReportMetric(0, "ns/op")
}
