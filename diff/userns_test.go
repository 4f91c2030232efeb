package diff_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"archive/tar"

	"github.com/hullproject/hull/diff"
)

// The child half of TestDevicesSkippedInUserNS: apply a layer with device
// nodes into a directory from inside a user namespace.
func init() {
	dst := os.Getenv("HULL_DIFF_USERNS_DIR")
	if dst == "" {
		return
	}
	layer := mkTar(nopTB{}, dir("dev/", 0o755),
		e{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime},
		e{Typeflag: tar.TypeFifo, Name: "dev/fifo", Mode: 0o600, ModTime: mtime},
		file("etc-file", "x", 0o644))
	_, err := diff.Apply(context.Background(), bindMounts(dst), bytes.NewReader(layer), "")
	fmt.Println("apply:", err)
	os.Exit(0)
}

// nopTB lets mkTar run outside a test (in the re-executed child).
type nopTB struct{ testing.TB }

func (nopTB) Helper()                   {}
func (nopTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (nopTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// TestDevicesSkippedInUserNS applies a layer with a device node as root of
// a user namespace, where mknod of devices is not allowed: the device is
// skipped (with a logged reason), the rest of the layer is applied.
func TestDevicesSkippedInUserNS(t *testing.T) {
	needRoot(t)
	dst := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HULL_DIFF_USERNS_DIR="+dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot start a user namespace here: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "apply: <nil>") {
		t.Fatalf("child: %s", out)
	}
	if !strings.Contains(string(out), "device node") {
		t.Errorf("no logged reason for the skipped device: %s", out)
	}
	if _, err := os.Lstat(filepath.Join(dst, "dev/null")); err == nil {
		t.Error("device node created inside a user namespace")
	}
	for _, p := range []string{"dev/fifo", "etc-file"} {
		if _, err := os.Lstat(filepath.Join(dst, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
