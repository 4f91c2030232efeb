package daemon_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullproject/hull/internal/hulltest"
	"github.com/hullproject/hull/vm/accel"
	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/guesttest"
)

// TestVMInfo: `hull info` shows, for a vm runtime, the guest kernel's
// version, config hash and sizes (kernel.json), the agent build (the
// initramfs manifest), and the acceleration verdict with its reason; a vm
// runtime whose kernel is missing is not usable and the reason names the
// file.
func TestVMInfo(t *testing.T) {
	hulltest.RequireRoot(t)
	m := guesttest.MinimalKernel(t)
	// A guest dir with Hull's kernel (and the probe's test init), and an
	// initramfs whose manifest names a known build.
	dir := t.TempDir()
	for _, f := range []string{guest.ManifestName, m.BzImage.Path, m.Config.Path, "testinit.cpio"} {
		if err := os.Symlink(filepath.Join(m.Dir(), f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if m.Vmlinux != nil {
		if err := os.Symlink(m.Path(m.Vmlinux.Path), filepath.Join(dir, m.Vmlinux.Path)); err != nil {
			t.Fatal(err)
		}
	}
	agentBin := filepath.Join(dir, "hull-agent")
	if err := os.WriteFile(agentBin, []byte("not really an agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "agent.cpio"), []byte("not really an initramfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := guest.WriteInitrdManifest(filepath.Join(dir, "agent.cpio"), agentBin, "v-vminfo-test", "none", 0); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HULL_GUEST_DIR", dir)
	// What the daemon must report: the verdict vm/accel gives for this
	// guest dir (probed once, then cached on disk).
	want := accel.Detect(context.Background(), accel.Options{GuestDir: dir})

	d := hulltest.NewDaemon(t)
	d.Config = "[runtimes.vmnokernel]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = \"/no/such/vmlinux\" } }\n"
	d.Start()

	out := d.MustHull("info")
	t.Logf("hull info:\n%s", out)
	for _, s := range []string{"Runtime vm:", m.Release, m.ConfigSHA256, "accel reason:", want.Reason, "v-vminfo-test", "bzImage "} {
		if !strings.Contains(out, s) {
			t.Errorf("hull info lacks %q:\n%s", s, out)
		}
	}

	var info struct {
		Runtimes []struct {
			Name    string            `json:"name"`
			Usable  bool              `json:"usable"`
			Reason  string            `json:"reason"`
			Details map[string]string `json:"details"`
		} `json:"runtimes"`
	}
	js := d.MustHull("--format", "json", "info")
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatalf("hull info --format json: %v\n%s", err, js)
	}
	seen := 0
	for _, rt := range info.Runtimes {
		switch rt.Name {
		case "vm":
			seen++
			for k, v := range map[string]string{"kernel_release": m.Release, "kernel_config_sha256": m.ConfigSHA256, "accel": want.Accel, "accel_reason": want.Reason} {
				if rt.Details[k] != v {
					t.Errorf("vm details[%s] = %q, want %q", k, rt.Details[k], v)
				}
			}
			if !rt.Usable {
				t.Errorf("vm runtime not usable: %s", rt.Reason)
			}
		case "vmnokernel":
			seen++
			if rt.Usable || !strings.Contains(rt.Reason, "/no/such/vmlinux") {
				t.Errorf("vm runtime with a missing kernel: usable %v, reason %q", rt.Usable, rt.Reason)
			}
		case "native":
			if len(rt.Details) != 0 {
				t.Errorf("native runtime has vm details %v", rt.Details)
			}
		}
	}
	if seen != 2 {
		t.Errorf("hull info --format json lacks the vm runtimes: %s", js)
	}
}
