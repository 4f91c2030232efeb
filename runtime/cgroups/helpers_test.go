package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lib "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: writes to the host's cgroup hierarchies")
	}
}

func needLayout(t *testing.T, want ...Layout) {
	t.Helper()
	for _, w := range want {
		if Mode() == w {
			return
		}
	}
	t.Skipf("host cgroups are %s; this test is for %v", Mode(), want)
}

// hostHas reports whether a controller can be used on this host: a v1
// hierarchy, or the v2 tree (unified, or hybrid's unified/).
func hostHas(ctrl string) bool {
	if Mode() == Unified {
		if ctrl == "blkio" {
			ctrl = "io"
		}
		return ctrl == "devices" || ctrl == "freezer" || v2Controllers(Root)[ctrl]
	}
	if paths, err := v1Paths("/"); err == nil && paths[ctrl] != "" {
		return true
	}
	return Mode() == Hybrid && v2Controllers(hybridUnified)[ctrl]
}

// testParent gives each test its own absolute parent cgroup, removed (with
// everything under it) when the test ends.
func testParent(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("/hull-cgtest-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
	t.Cleanup(func() {
		for _, root := range []string{Root, hybridUnified} {
			entries, _ := os.ReadDir(root)
			for _, e := range entries {
				dir := filepath.Join(root, e.Name(), p)
				if root == hybridUnified {
					dir = filepath.Join(root, p)
				}
				if _, err := os.Stat(dir); err == nil {
					if err := lib.RemovePath(dir); err != nil {
						t.Errorf("cleanup: %v", err)
					}
				}
			}
		}
	})
	return p
}

// proc is a shell running in the background that, for each line it reads,
// runs the line and answers "ok" or "fail". It lets a test do things from
// inside a cgroup after the process was moved in.
type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	// pending is a read of the next answer that has not returned yet
	pending chan string
}

func startProc(t *testing.T) *proc {
	t.Helper()
	cmd := exec.Command("sh", "-c", `while read -r line; do if (eval "$line"); then echo ok; else echo fail; fi; done`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(p.kill)
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// run asks the shell to run line and reports whether it succeeded.
func (p *proc) run(t *testing.T, line string) bool {
	t.Helper()
	p.send(t, line)
	ans, ok := p.answer(30 * time.Second)
	if !ok {
		t.Fatalf("shell did not answer %q", line)
	}
	return ans == "ok"
}

// send gives the shell a line without waiting for the answer.
func (p *proc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		t.Fatalf("writing to shell: %v", err)
	}
}

// answer waits up to d for the shell's next answer line. A line not read in
// time stays pending for the next call.
func (p *proc) answer(d time.Duration) (string, bool) {
	if p.pending == nil {
		ch := make(chan string, 1)
		p.pending = ch
		go func() {
			s, _ := p.out.ReadString('\n')
			ch <- strings.TrimSpace(s)
		}()
	}
	select {
	case s := <-p.pending:
		p.pending = nil
		return s, true
	case <-time.After(d):
		return "", false
	}
}

// procState is the one-letter state from /proc/<pid>/stat.
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	return strings.Fields(s[i+1:])[0]
}

func readFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// newTestManager creates a manager and, at cleanup, kills what is left in
// the cgroup, thaws it and destroys it.
func newTestManager(t *testing.T, path, id string, r *specs.LinuxResources) Manager {
	t.Helper()
	m, err := New(path, id, r)
	if err != nil {
		t.Fatalf("New(%q, %q): %v", path, id, err)
	}
	t.Cleanup(func() { cleanupManager(t, m) })
	return m
}

func cleanupManager(t *testing.T, m Manager) {
	_ = m.Thaw()
	if pids, err := m.Pids(); err == nil {
		for _, pid := range pids {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if pids, err := m.Pids(); err != nil || len(pids) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
}
