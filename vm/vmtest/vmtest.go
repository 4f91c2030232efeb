// Package vmtest gives the vm runtime's tests what they boot: hull-agent
// built from the tree (static, as mk/vm.mk builds it), an agent initramfs
// around it, Hull's built guest kernel, and a check that a test left no
// QEMU or virtiofsd behind.
package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
)

var (
	agentOnce sync.Once
	agentDir  string
	agentPath string
	agentErr  error
)

// Agent builds cmd/hull-agent once per test binary and returns its path.
// Call Cleanup from TestMain.
func Agent(tb testing.TB) string {
	tb.Helper()
	agentOnce.Do(func() {
		agentDir, agentErr = os.MkdirTemp("", "hull-agent-")
		if agentErr != nil {
			return
		}
		agentPath = filepath.Join(agentDir, "hull-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "netgo,osusergo",
			"-ldflags", "-s -w -linkmode external -extldflags -static",
			"-o", agentPath, "github.com/hullproject/hull/cmd/hull-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = &buildError{err: err, out: string(out)}
		}
	})
	if agentErr != nil {
		tb.Fatalf("building hull-agent: %v", agentErr)
	}
	return agentPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// Cleanup removes the built agent.
func Cleanup() {
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
}

var (
	rdOnce sync.Once
	rdPath string
	rdErr  error
)

// Initramfs returns an agent initramfs for Hull's minimal kernel, built
// once per test binary. Uncompressed, as make guest-initramfs builds it:
// under TCG the agent answered ~0.5 s sooner than with gzip (measured here,
// 4 interleaved boots each).
func Initramfs(tb testing.TB) string {
	tb.Helper()
	a := Agent(tb)
	rdOnce.Do(func() {
		rdPath = filepath.Join(agentDir, "agent.cpio")
		rdErr = initramfs.WriteFile(rdPath, initramfs.Spec{Init: a})
	})
	if rdErr != nil {
		tb.Fatalf("agent initramfs: %v", rdErr)
	}
	return rdPath
}

// Kernel returns Hull's minimal guest kernel (vmlinux, PVH boot), skipping
// when QEMU is not installed or the kernel is not built.
func Kernel(tb testing.TB) string {
	tb.Helper()
	guesttest.RequireQEMU(tb)
	m := guesttest.MinimalKernel(tb)
	if m.Vmlinux != nil {
		return m.Path(m.Vmlinux.Path)
	}
	return m.Path(m.BzImage.Path)
}

// Children returns the pids of processes named qemu-system-* or virtiofsd
// whose parent is this process (or that are in a process group led by one
// of its children).
func Children() []int {
	self := strconv.Itoa(os.Getpid())
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		comm := s[i+1 : j]
		f := strings.Fields(s[j+1:])
		if len(f) < 2 || f[1] != self {
			continue
		}
		if strings.HasPrefix(comm, "qemu-system") || strings.HasPrefix(comm, "virtiofsd") {
			out = append(out, pid)
		}
	}
	return out
}

// NoStrays fails tb if a QEMU or virtiofsd child of this process is still
// there shortly after the test (they are reaped asynchronously).
func NoStrays(tb testing.TB) {
	tb.Helper()
	var left []int
	for i := 0; i < 100; i++ {
		if left = Children(); len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Errorf("stray hypervisor processes left: %v", left)
}

// PSSKiB returns the summed proportional set size (smaps_rollup Pss) of
// every process in the process groups led by pids (QEMU and virtiofsd run
// in their own groups; virtiofsd forks a sandboxed child into its group).
func PSSKiB(pids ...int) (int64, error) {
	groups := map[string]bool{}
	for _, p := range pids {
		groups[strconv.Itoa(p)] = true
	}
	var total int64
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		// state ppid pgrp
		if len(f) < 3 || !groups[f[2]] {
			continue
		}
		r, err := os.ReadFile("/proc/" + e.Name() + "/smaps_rollup")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(r), "\n") {
			if strings.HasPrefix(l, "Pss:") {
				v := strings.Fields(l)
				if len(v) >= 2 {
					n, _ := strconv.ParseInt(v[1], 10, 64)
					total += n
				}
			}
		}
	}
	return total, nil
}
