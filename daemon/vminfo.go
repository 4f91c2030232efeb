package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/accel"
	"github.com/hullproject/hull/vm/drivers"
	"github.com/hullproject/hull/vm/guest"
)

// vmInfo fills in what `hull info` shows for a runtime in the vm mode
// (issue #5: versions, the acceleration verdict and why; issue #7: the
// guest kernel's version, config hash and sizes): the guest kernel and
// initramfs it boots (from their manifests, kernel.json and
// <initrd>.json), the hypervisor and the acceleration verdict of
// vm/accel, whose first probe boots a guest (up to 10 s) and is cached on
// disk. A runtime whose kernel or initramfs is missing is not usable, and
// the reason says which file. Other modes are left alone.
func vmInfo(ctx context.Context, ri *hullv1.RuntimeInfo, mode string, opts map[string]any) {
	if mode != "vm" {
		return
	}
	backend, _ := opts["backend"].(map[string]any)
	str := func(k string) string {
		s, _ := backend[k].(string)
		return s
	}
	d := map[string]string{}
	ri.Details = d

	dir := str("guest_dir")
	if dir == "" {
		dir = vmGuestDir(ri.Shim)
	}
	d["guest_dir"] = dir
	a := vm.DefaultAssets(dir, false)
	kernel, initrd := str("kernel"), str("initrd")
	if kernel == "" {
		kernel = a.Kernel
	}
	if initrd == "" {
		initrd = a.Initrd
	}
	hv := str("hypervisor")
	if hv == "" {
		hv = "qemu"
	}
	d["hypervisor"] = hv
	if hv == "qemu" {
		d["hypervisor"] = "qemu: " + qemuVersion(ctx)
	}
	// Which hypervisors this host has, and the agent channel (vm/drivers).
	for k, v := range drivers.Summary() {
		d[k] = v
	}

	// The guest kernel: its manifest when it is one Hull built or fetched.
	d["kernel"] = kernel
	var problems []string
	if _, err := os.Stat(kernel); err != nil {
		problems = append(problems, fmt.Sprintf("guest kernel %s: %v (run `make guest-kernel`)", kernel, errText(err)))
	}
	if m, err := guest.ReadManifest(filepath.Dir(kernel)); err == nil {
		d["kernel_release"] = m.Release
		d["kernel_source"] = strings.TrimSpace(m.SourcePackage + " " + m.SourceVersion)
		d["kernel_config_sha256"] = m.ConfigSHA256
		sizes := []string{fmt.Sprintf("%s %s", filepath.Base(m.BzImage.Path), mib(m.BzImage.Size))}
		if m.Vmlinux != nil {
			sizes = append(sizes, fmt.Sprintf("%s %s", filepath.Base(m.Vmlinux.Path), mib(m.Vmlinux.Size)))
		}
		if len(m.Modules) > 0 {
			sizes = append(sizes, fmt.Sprintf("%d modules", len(m.Modules)))
		}
		d["kernel_sizes"] = strings.Join(sizes, ", ")
		if err := m.Check(); err != nil {
			problems = append(problems, err.Error())
		}
	} else {
		d["kernel_release"] = "unknown (no kernel.json beside the kernel: not built by Hull)"
	}

	// The initramfs and the agent in it.
	d["initrd"] = initrd
	if st, err := os.Stat(initrd); err != nil {
		problems = append(problems, fmt.Sprintf("agent initramfs %s: %v (run `make guest-initramfs`)", initrd, errText(err)))
	} else if m, err := guest.ReadInitrdManifest(initrd); err == nil {
		v := m.HullVersion
		if v == "" {
			v = "unknown version"
		}
		d["initrd"] = fmt.Sprintf("%s (%s, %s)", initrd, mib(m.Size), m.Compression)
		d["agent"] = fmt.Sprintf("%s from Hull %s (%s, sha256 %s, built %s)", filepath.Base(m.Init), v, mib(m.InitSize), short(m.InitSHA256), m.BuiltAt.Format(time.RFC3339))
	} else {
		d["initrd"] = fmt.Sprintf("%s (%s)", initrd, mib(st.Size()))
		d["agent"] = "unknown (" + errText(err) + ")"
	}

	// Acceleration: set by the runtime, or detected.
	if set := str("accel"); set != "" {
		d["accel"] = set + " (set by the runtime's backend.accel)"
	} else {
		r := detectAccel(ctx, dir)
		d["accel"] = r.Accel
		d["accel_reason"] = r.Reason
		if r.Accel == accel.TCG {
			tb := accel.DefaultTBSizeMiB
			if n, ok := number(backend["tb_size_mib"]); ok && n != 0 {
				tb = n
			}
			if tb > 0 {
				d["tcg_tb_size_mib"] = fmt.Sprint(tb)
			} else {
				d["tcg_tb_size_mib"] = "QEMU's default"
			}
		}
	}

	if len(problems) > 0 {
		ri.Usable = false
		ri.Reason = strings.Join(problems, "; ")
		return
	}
	ri.Reason = fmt.Sprintf("vm: %s, guest kernel %s, accel %s", hv, d["kernel_release"], strings.Fields(d["accel"])[0])
}

// vmGuestDir is the guest asset directory the shim uses when the runtime
// sets none, in the same order (shim/vm.go): $HULL_GUEST_DIR, else
// ../build/guest beside the shim binary when it holds agent.cpio, else
// /usr/lib/hull/guest.
func vmGuestDir(shim string) string {
	if d := os.Getenv("HULL_GUEST_DIR"); d != "" {
		return d
	}
	if shim != "" {
		d := filepath.Join(filepath.Dir(shim), "..", "build", "guest")
		if _, err := os.Stat(filepath.Join(d, "agent.cpio")); err == nil {
			return filepath.Clean(d)
		}
	}
	return "/usr/lib/hull/guest"
}

// detectAccel asks vm/accel once per guest directory and process: the
// verdict is cached on disk by vm/accel, and here so that `hull info` does
// not stat the probe files every time.
var accelVerdicts sync.Map // guest dir → accel.Result

func detectAccel(ctx context.Context, dir string) accel.Result {
	if r, ok := accelVerdicts.Load(dir); ok {
		return r.(accel.Result)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r := accel.Detect(ctx, accel.Options{GuestDir: dir})
	if ctx.Err() == nil {
		accelVerdicts.Store(dir, r)
	}
	return r
}

var qemuVersionOnce = sync.OnceValue(func() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", "--version").Output()
	if err != nil {
		return "qemu-system-x86_64 not usable (" + errText(err) + ")"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
})

func qemuVersion(context.Context) string { return qemuVersionOnce() }

func number(v any) (int, bool) {
	switch n := v.(type) {
	case int64:
		return int(n), true
	case int:
		return n, true
	case float64:
		return int(n), true
	}
	return 0, false
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func errText(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "stat ") {
		return s[i+2:]
	}
	return strings.TrimPrefix(s, "exec: ")
}
