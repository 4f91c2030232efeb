package bench

// pull_bench_test.go times a cold pull + unpack of one multi-layer image
// from the local registry (HULL_TEST_REGISTRY, started by
// scripts/test-env.d/registry.sh) with Hull's image service and with
// containerd 1.6 (`ctr images pull --plain-http`, which unpacks into its
// overlayfs snapshotter). Every round starts from fresh roots for both (a
// new containerd daemon per round; its start-up is not timed), and the two
// alternate round by round. Hull runs in-process (the library the daemon
// calls); ctr is a client process talking to its daemon.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/image"
	"github.com/hullproject/hull/internal/testimages"
	"github.com/hullproject/hull/metadata"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot/auto"
)

const (
	pullBenchLayers = 10
	pullBenchPad    = 2 << 20 // incompressible bytes per layer
)

func pullBenchImage(b *testing.B) string {
	reg := os.Getenv("HULL_TEST_REGISTRY")
	if reg == "" {
		b.Skip("HULL_TEST_REGISTRY is not set: run through scripts/bench.sh, which starts docker-registry")
	}
	img, _, err := testimages.ManyLayers(pullBenchLayers, pullBenchPad, testimages.Options{OCI: true})
	if err != nil {
		b.Fatal(err)
	}
	ref, err := testimages.Push(context.Background(), reg, "bench/pull:latest", img)
	if err != nil {
		b.Fatal(err)
	}
	return ref
}

func pullHull(b *testing.B, ref string) time.Duration {
	dir, err := os.MkdirTemp("", "hull-pullbench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cs, err := content.Open(filepath.Join(dir, "content"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := metadata.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sn, name, err := auto.New(filepath.Join(dir, "snapshots"), auto.Overlay)
	if err != nil {
		b.Fatal(err)
	}
	defer sn.Close()
	s := &image.Service{Content: cs, Meta: db, Snapshotter: sn, SnapshotterName: name, Applier: image.DiffApplier{}}
	start := time.Now()
	if _, err := s.Pull(context.Background(), "bench", ref, image.PullOptions{Unpack: true}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func pullContainerd(b *testing.B, ref string) time.Duration {
	dir, err := os.MkdirTemp("", "ctrd-pullbench-")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		mount.UnmountAll(filepath.Join(dir, "root"), 0)
		os.RemoveAll(dir)
	}()
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	log, _ := os.Create(filepath.Join(dir, "containerd.log"))
	defer log.Close()
	d := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { d.Process.Kill(); d.Wait() }()
	for i := 0; ; i++ {
		if exec.Command("ctr", "-a", sock, "version").Run() == nil {
			break
		}
		if i > 200 {
			logb, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			b.Fatalf("containerd did not start: %s", logb)
		}
		time.Sleep(25 * time.Millisecond)
	}
	start := time.Now()
	out, err := exec.Command("ctr", "-a", sock, "-n", "bench", "images", "pull", "--plain-http", ref).CombinedOutput()
	el := time.Since(start)
	if err != nil {
		b.Fatalf("ctr pull: %v\n%s", err, out)
	}
	// It must have unpacked: one committed overlayfs snapshot per layer.
	snaps, err := exec.Command("ctr", "-a", sock, "-n", "bench", "snapshots", "ls").Output()
	if err != nil || strings.Count(string(snaps), "Committed") != pullBenchLayers+1 {
		b.Fatalf("containerd did not unpack (%v):\n%s", err, snaps)
	}
	return el
}

func BenchmarkPullUnpack(b *testing.B) {
	if _, err := exec.LookPath("containerd"); err != nil {
		b.Skip("containerd is not installed")
	}
	ref := pullBenchImage(b)
	var hull, ctrd []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			hull = append(hull, pullHull(b, ref))
			ctrd = append(ctrd, pullContainerd(b, ref))
		} else {
			ctrd = append(ctrd, pullContainerd(b, ref))
			hull = append(hull, pullHull(b, ref))
		}
	}
	b.StopTimer()
	h, c := medianDur(hull), medianDur(ctrd)
	ratio := float64(h) / float64(c)
	b.ReportMetric(float64(h.Microseconds())/1000, "hull-ms")
	b.ReportMetric(float64(c.Microseconds())/1000, "containerd-ms")
	b.ReportMetric(ratio, "ratio")
	fmt.Printf("\npull+unpack of %d layers (%d MiB incompressible + busybox), cold, %d rounds interleaved:\n"+
		"  hull        median %s\n  containerd  median %s (ctr images pull --plain-http, overlayfs)\n  ratio hull/containerd %.2f (target <= 1.0) %s\n",
		pullBenchLayers+1, pullBenchLayers*pullBenchPad>>20, len(hull), ms(h), ms(c), ratio, verdict(ratio <= 1.0))
}
