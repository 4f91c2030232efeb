// Package accel decides how Hull's VMs are accelerated: KVM when a guest
// really boots on it, TCG (QEMU's software emulation) otherwise, with the
// reason shown to users (`hull info`).
//
// /dev/kvm existing, or even opening and answering KVM_GET_API_VERSION, is
// not enough: on hosts such as this project's build machines /dev/kvm is a
// paravirtual KVM (PVM) on which an ordinary guest hangs in early boot. So
// Detect boots a probe guest (Hull's minimal kernel and the test init) under
// `-accel kvm` with a timeout, and caches the verdict on disk keyed by the
// probe kernel and initrd, the QEMU binary and the host kernel (files by
// inode, size and mtime, so a cached answer costs a few stats), so the cost
// (one short boot, or the timeout) is paid once.
//
// QEMUArg turns the verdict into QEMU's -accel value; for TCG it sizes the
// translation cache (tb-size), which is most of an idle QEMU's memory.
package accel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/bootcheck"
)

// Accelerators.
const (
	KVM = "kvm"
	TCG = "tcg"
)

// Result is Detect's verdict.
type Result struct {
	// Accel is KVM or TCG.
	Accel string `json:"accel"`
	// Reason says why, in words for users.
	Reason string `json:"reason"`
	// Key is what a cached verdict was keyed by (empty when not cached).
	Key string `json:"key,omitempty"`
	// QEMU is the first line of `qemu --version` when the probe ran.
	QEMU      string    `json:"qemu,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	// Cached is true when the verdict came from the on-disk cache.
	Cached bool `json:"-"`
}

// Options configure Detect. Zero values take the defaults.
type Options struct {
	// DevKVM is the KVM device (/dev/kvm).
	DevKVM string
	// QEMU binary (qemu-system-x86_64).
	QEMU string
	// Kernel and Initrd boot the probe guest: by default Hull's minimal
	// kernel and the test init's initramfs from GuestDir.
	Kernel, Initrd string
	// GuestDir holds the probe guest (guest.DefaultDir() when empty): pass
	// the runtime's guest directory, so the probe finds its kernel.
	GuestDir string
	// CacheDir holds cached verdicts (<user cache dir>/hull/accel).
	CacheDir string
	// Timeout for the probe boot (10 s): a guest that boots on KVM is at
	// init well within it.
	Timeout time.Duration
	// NoCache forces a new probe (the verdict is still stored).
	NoCache bool
	Logger  *slog.Logger
}

func (o *Options) defaults() {
	if o.DevKVM == "" {
		o.DevKVM = "/dev/kvm"
	}
	if o.QEMU == "" {
		o.QEMU = bootcheck.DefaultQEMU
	}
	if o.Kernel == "" || o.Initrd == "" {
		dir := o.GuestDir
		if dir == "" {
			dir = guest.DefaultDir()
		}
		if o.Kernel == "" {
			o.Kernel = filepath.Join(dir, "bzImage")
			if m, err := guest.ReadManifest(dir); err == nil {
				o.Kernel = m.Path(m.BzImage.Path)
			}
		}
		if o.Initrd == "" {
			o.Initrd = filepath.Join(dir, "testinit.cpio")
		}
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		o.CacheDir = filepath.Join(base, "hull", "accel")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

const kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)

// openKVM checks that the KVM device opens and speaks API version 12.
func openKVM(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	v, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", dev, errno)
	}
	if v != 12 {
		return fmt.Errorf("%s: KVM API version %d, want 12", dev, v)
	}
	return nil
}

func qemuVersion(ctx context.Context, qemu string) (string, error) {
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", qemu, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first), nil
}

// statID identifies a file cheaply by its device, inode, size and
// modification time (through symlinks): enough to notice a rebuilt kernel
// or an upgraded QEMU, without reading the file (every VM start asks for
// the verdict).
func statID(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec), nil
}

// cacheKey identifies everything the verdict depends on: the QEMU binary,
// the probe kernel and initrd, and the host kernel.
func cacheKey(ctx context.Context, o *Options) (string, error) {
	qemu, err := exec.LookPath(o.QEMU)
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.QEMU, err)
	}
	var parts []string
	for _, f := range []string{qemu, o.Kernel, o.Initrd} {
		id, err := statID(f)
		if err != nil {
			return "", err
		}
		parts = append(parts, id)
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	parts = append(parts, unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Version[:]))
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(h[:]), nil
}

func tcg(reason string) Result {
	return Result{Accel: TCG, Reason: reason, CheckedAt: time.Now().UTC()}
}

// Detect says whether to use KVM or TCG. It never fails: when KVM cannot be
// verified, the answer is TCG with the reason.
func Detect(ctx context.Context, o Options) Result {
	o.defaults()
	if err := openKVM(o.DevKVM); err != nil {
		return tcg(fmt.Sprintf("KVM unusable (%v); using TCG software emulation", err))
	}
	key, err := cacheKey(ctx, &o)
	if err != nil {
		return tcg(fmt.Sprintf("KVM not verified: no probe guest to boot (%v; run `make guest`); using TCG software emulation", err))
	}
	cacheFile := filepath.Join(o.CacheDir, key[:32]+".json")
	if !o.NoCache {
		if b, err := os.ReadFile(cacheFile); err == nil {
			var r Result
			if json.Unmarshal(b, &r) == nil && r.Key == key && (r.Accel == KVM || r.Accel == TCG) {
				r.Cached = true
				return r
			}
		}
	}
	o.Logger.Info("probing KVM with a test boot", "kernel", o.Kernel, "timeout", o.Timeout)
	res, err := bootcheck.Boot(ctx, bootcheck.Config{
		QEMU:    o.QEMU,
		Kernel:  o.Kernel,
		Initrd:  o.Initrd,
		Accel:   KVM,
		Marker:  guest.TestInitMarker,
		Timeout: o.Timeout,
	})
	var r Result
	switch {
	case ctx.Err() != nil:
		// Interrupted: say so, and do not cache a verdict we did not reach.
		return tcg(fmt.Sprintf("KVM not verified: probe interrupted (%v); using TCG software emulation", ctx.Err()))
	case err == nil:
		r = Result{Accel: KVM, Reason: fmt.Sprintf("KVM: a probe guest booted to init in %v", res.MarkerAt.Round(time.Millisecond))}
	case errors.Is(err, bootcheck.ErrTimeout):
		r = tcg(fmt.Sprintf("KVM unusable: %s opens, but a probe guest did not reach init under KVM within %v (a paravirtual KVM such as PVM cannot boot ordinary guests); using TCG software emulation", o.DevKVM, o.Timeout))
	default:
		first, _, _ := strings.Cut(err.Error(), "\n")
		r = tcg(fmt.Sprintf("KVM unusable: %s opens, but a probe guest failed under KVM (%s); using TCG software emulation", o.DevKVM, first))
	}
	r.Key = key
	r.QEMU, _ = qemuVersion(ctx, o.QEMU)
	r.CheckedAt = time.Now().UTC()
	if err := os.MkdirAll(o.CacheDir, 0o755); err == nil {
		if b, err := json.Marshal(r); err == nil {
			tmp := cacheFile + ".tmp"
			if os.WriteFile(tmp, b, 0o644) == nil {
				_ = os.Rename(tmp, cacheFile)
			}
		}
	}
	return r
}

// DefaultTBSizeMiB is the TCG translation-cache size Hull gives QEMU when
// a runtime does not set one (backend key tb_size_mib). QEMU's own default
// (1 GiB on 64-bit hosts) is reserved lazily, but booting Hull's kernel and
// agent fills about 46-50 MiB of it, which stays resident for the VM's
// life (QEMU never gives flushed cache pages back); a smaller cache is
// flushed and refilled instead, which costs CPU time, and under TCG the
// boot's wall time is about QEMU's CPU time. Measured on the 2-core
// project machine through hulld (bench/vm_bench_test.go,
// BenchmarkVMLevers, 3 rounds, 2 Dec 16:00 UTC with the guest kernel's
// calibration patches; QEMU's CPU time from its start to an idle
// container, and PSS when idle):
//
//	tb-size (MiB)          16     24     32     QEMU default
//	QEMU CPU (ms)          1890   1530   1370   1170
//	TCG cache PSS (MiB)    16     24     32     46
//	QEMU heaps PSS (MiB)   14.4   15.7   17.2   18.6
//
// 32 costs ~17% more QEMU CPU than QEMU's default for 14 MiB less; 16
// (tb_size_mib = 16) saves 19 MiB more per VM (cache and the translator's
// metadata) for ~+40% QEMU CPU to start, a memory-first setting.
const DefaultTBSizeMiB = 32

// QEMUArg returns QEMU's -accel value for accelerator kind (KVM, TCG, or
// an explicit value such as "tcg,thread=single", passed through). For plain
// TCG it adds tb-size: tbSizeMiB when positive, DefaultTBSizeMiB when 0,
// and nothing (QEMU's default) when negative.
func QEMUArg(kind string, tbSizeMiB int) string {
	if kind != TCG {
		return kind
	}
	switch {
	case tbSizeMiB == 0:
		tbSizeMiB = DefaultTBSizeMiB
	case tbSizeMiB < 0:
		return TCG
	}
	return fmt.Sprintf("%s,tb-size=%d", TCG, tbSizeMiB)
}
