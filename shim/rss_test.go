package shim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procMem reads VmRSS and the summed Pss (smaps_rollup) of pid, in KiB.
func procMem(pid int) (rss, pss int, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
	}
	rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return rss, 0, err
	}
	for _, l := range strings.Split(string(rollup), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			pss, _ = strconv.Atoi(f[1])
		}
	}
	return rss, pss, nil
}

// ppid is the parent of pid.
func ppid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	p, _ := strconv.Atoi(f[1])
	return p
}

// idleShimMem starts a sleeping task under runtime type rt and measures
// the memory of its shim once idle.
func (c *ctrd) idleShimMem(t *testing.T, rt string, extra ...string) (rss, pss int) {
	t.Helper()
	id := c.newID(t)
	args := append([]string{"run", "-d", "--runtime", rt}, extra...)
	args = append(args, imageRef, id, "sleep", "1000")
	if out, err := c.ctr(args...); err != nil {
		t.Fatalf("run under %s: %v %s", rt, err, out)
	}
	pidFile := filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", c.ns, id, "init.pid")
	var taskPid int
	waitFor(t, "task pid", func() bool {
		out, _ := c.ctr("task", "ls")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == id {
				taskPid, _ = strconv.Atoi(f[1])
			}
		}
		return taskPid > 0
	})
	_ = pidFile
	shim := ppid(taskPid)
	// Idle: let start-up garbage be collected and returned.
	time.Sleep(3 * time.Second)
	rss, pss, err := procMem(shim)
	if err != nil {
		t.Fatalf("shim %d memory: %v", shim, err)
	}
	if _, err := c.ctr("task", "kill", "-s", "SIGKILL", id); err != nil {
		t.Fatal(err)
	}
	return rss, pss
}

// TestShimIdleRSS measures an idle shim's memory beside containerd's runc
// shim (containerd-shim-runc-v2) measured the same way. Target: ≤ 8 MiB RSS.
func TestShimIdleRSS(t *testing.T) {
	if raceDir != "" {
		t.Skip("HULL_SHIM_RACE: race-built shims are several times larger")
	}
	c := startContainerd(t)
	rts := runtimes(t)
	bin := rts["runc"]
	if bin == "" {
		for _, b := range rts {
			bin = b
		}
	}
	rss, pss := c.idleShimMem(t, runtimeType, "--runtime-config-path", c.runtimeConfig(t, bin))
	t.Logf("containerd-shim-hull-v2 idle: VmRSS %d KiB, PSS %d KiB", rss, pss)
	if _, err := os.Stat("/usr/bin/containerd-shim-runc-v2"); err == nil {
		rrss, rpss := c.idleShimMem(t, "io.containerd.runc.v2")
		t.Logf("containerd-shim-runc-v2 idle: VmRSS %d KiB, PSS %d KiB", rrss, rpss)
	}
	if rss > 8<<10 {
		t.Errorf("idle shim VmRSS %d KiB, over the 8 MiB target", rss)
	}
}
