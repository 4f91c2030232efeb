package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRealtimeBudget: a realtime budget the parent cannot give is an error
// naming the field; once the parent has one, the child gets its share.
func TestRealtimeBudget(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	if !hostHas("cpu") {
		t.Skip("no cpu controller")
	}
	res := &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000)), RealtimePeriod: ptr(uint64(1000000))}}
	parent := testParent(t)
	m := newTestManager(t, parent+"/rt", "rt", res)
	if _, err := os.Stat(filepath.Join(Root, "cpu", "cpu.rt_runtime_us")); err != nil {
		t.Skip("kernel without RT group scheduling")
	}
	p := startProc(t)
	err := m.Apply(p.pid())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "linux.resources.cpu.realtimeRuntime") {
		t.Fatalf("Apply with no parent budget = %v, want ErrInvalid naming cpu.realtimeRuntime", err)
	}
	// grant the parent a budget, then it works
	pdir := filepath.Join(Root, "cpu", parent)
	if err := os.WriteFile(filepath.Join(pdir, "cpu.rt_runtime_us"), []byte("2000"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(filepath.Join(pdir, "cpu.rt_runtime_us"), []byte("0"), 0) })
	m2 := newTestManager(t, parent+"/rt2", "rt2", res)
	p2 := startProc(t)
	if err := m2.Apply(p2.pid()); err != nil {
		t.Fatalf("Apply with a parent budget: %v", err)
	}
	if got := readFile(t, m2.Paths()["cpu"], "cpu.rt_runtime_us"); got != "1000" {
		t.Errorf("cpu.rt_runtime_us = %q", got)
	}
}

// TestCpusetOutsideParent: CPUs the parent cpuset lacks are refused with an
// error naming cpu.cpus.
func TestCpusetOutsideParent(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	if !hostHas("cpuset") {
		t.Skip("no cpuset controller")
	}
	if cpus, err := parseList(readFile(t, "/sys/devices/system/cpu", "online")); err != nil || len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	parent := testParent(t)
	// a parent limited to CPU 0
	pm := newTestManager(t, parent, "p", nil)
	pp := startProc(t)
	if err := pm.Apply(pp.pid()); err != nil {
		t.Fatal(err)
	}
	if err := pm.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}); err != nil {
		t.Fatal(err)
	}
	pp.kill()
	res := &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "1"}}
	m := newTestManager(t, parent+"/child", "c", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	err := m.Set(res)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "linux.resources.cpu.cpus") {
		t.Fatalf("Set of a CPU outside the parent = %v, want ErrInvalid naming cpu.cpus", err)
	}
	t.Log(err)
}

// TestBlkioWeightDevice: a per-device weight lands in the BFQ file when the
// device uses BFQ, and is an error naming the field when it does not.
func TestBlkioWeightDevice(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	blk := firstBlockDevice(t)
	if blk.Major < 0 || !hostHas("blkio") {
		t.Skip("no block device or no blkio controller")
	}
	sched, err := os.ReadFile("/sys/dev/block/" + devString(blk) + "/queue/scheduler")
	if err != nil {
		t.Skip("no I/O scheduler information:", err)
	}
	res := &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: blk, Weight: ptr(uint16(200))}}}}
	m := newTestManager(t, testParent(t)+"/w", "w", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	err = m.Set(res)
	if strings.Contains(string(sched), "[bfq]") {
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, m.Paths()["blkio"], "blkio.bfq.weight_device"); !strings.Contains(got, devString(blk)+" 200") {
			t.Errorf("blkio.bfq.weight_device = %q", got)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "linux.resources.blockIO.weightDevice[0]") {
		t.Fatalf("Set of a weight on a non-BFQ device (%s) = %v, want ErrInvalid naming blockIO.weightDevice[0]", strings.TrimSpace(string(sched)), err)
	}
	t.Log(err)
}
