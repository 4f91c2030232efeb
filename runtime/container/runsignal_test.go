package container_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hullproject/hull/internal/testutil"
)

// TestRunForwardsSignals: a foreground `run` passes the signals it gets on
// to the container's process (which here exits 7 on TERM), including one
// sent as soon as the process is up.
func TestRunForwardsSignals(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done`)
	id := r.newID()
	outFile := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := exec.Command(r.bin, "--root", r.root, "run", "--bundle", b.Dir, id)
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd("delete", "--force", id) })
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(outFile)
		if strings.Contains(string(data), "ready") {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("container never said ready: %q", data)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("run exited with %v, want exit code 7 (the process's)", err)
		}
	case <-time.After(10 * time.Second):
		c.Process.Kill()
		t.Fatal("run did not end after SIGTERM")
	}
	if data, _ := os.ReadFile(outFile); !strings.Contains(string(data), "got TERM") {
		t.Errorf("the process did not get TERM: %q", data)
	}
}
