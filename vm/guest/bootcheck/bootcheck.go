// Package bootcheck boots a kernel and initramfs in a bare QEMU, watches the
// serial console for a marker line and waits for the guest to power off.
// It is the bare boot floor: the guest-kernel tests, the boot benchmark and
// KVM detection use it. It is not the vm runtime's QEMU driver (no QMP, no
// devices beyond the console); it runs one short-lived VM and measures it.
package bootcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// DefaultQEMU is the QEMU binary used when Config.QEMU is empty.
const DefaultQEMU = "qemu-system-x86_64"

var (
	// ErrQEMUMissing wraps errdefs.ErrNotFound: no QEMU binary.
	ErrQEMUMissing = fmt.Errorf("qemu: %w", errdefs.ErrNotFound)
	// ErrKernelMissing wraps errdefs.ErrNotFound: the kernel or initrd file
	// does not exist.
	ErrKernelMissing = fmt.Errorf("guest kernel: %w", errdefs.ErrNotFound)
	// ErrTimeout: the guest did not power off in time.
	ErrTimeout = fmt.Errorf("guest boot timed out: %w", errdefs.ErrUnavailable)
	// ErrNoMarker: QEMU ended without the marker on the console.
	ErrNoMarker = fmt.Errorf("guest did not reach init: %w", errdefs.ErrUnavailable)
	// ErrQEMUFailed: QEMU exited with an error status.
	ErrQEMUFailed = fmt.Errorf("qemu failed: %w", errdefs.ErrUnavailable)
)

// Config describes one boot.
type Config struct {
	QEMU    string // DefaultQEMU
	Kernel  string // bzImage, vmlinuz, or an ELF vmlinux with a PVH note
	Initrd  string
	Machine string // "microvm" (ACPI on) by default; "q35" also works
	// Accel is QEMU's -accel value: "tcg" (default), "kvm", "tcg,tb-size=64".
	Accel     string
	MemoryMiB int // 256
	CPUs      int // 1
	// Append is added to the kernel command line after Hull's base
	// (console=ttyS0 panic=-1 tsc_early_khz=<host>).
	Append string
	// Marker is the console line prefix that proves init ran.
	Marker string
	// Timeout bounds the whole boot (60 s).
	Timeout time.Duration
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
}

// Result is what one boot measured.
type Result struct {
	Args []string
	// Console is everything the guest wrote on the serial port.
	Console []byte
	// MarkerAt is when the marker line appeared, from QEMU's start.
	MarkerAt time.Duration
	// KernelAt is a rough upper bound on when the kernel started running,
	// from QEMU's start (QEMU itself, firmware and bzImage decompression
	// come before it): the smallest (arrival - printk timestamp) over the
	// console's timestamped lines. Lines replayed from the printk buffer
	// and early boot phases where the guest clock lags make it an
	// overestimate, and "quiet" leaves few lines to take it from. Zero when
	// no timestamped line appeared.
	KernelAt time.Duration
	// Total is QEMU's start to its exit.
	Total time.Duration
	// MaxRSSKiB is QEMU's peak resident set size.
	MaxRSSKiB int64
	// CPU is QEMU's user plus system CPU time: under TCG the guest's work
	// shows here, steadier than wall time on a loaded host.
	CPU time.Duration
}

// ConsoleTail returns the last n lines of the console.
func (r *Result) ConsoleTail(n int) string { return Tail(r.Console, n) }

// Tail returns the last n lines of b.
func Tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	tscOnce sync.Once
	tscKHz  int
)

// HostTSCkHz returns the host CPU frequency in kHz from /proc/cpuinfo, or 0.
// Passing it as tsc_early_khz spares the guest the TSC calibration that
// sometimes hangs microvm under TCG.
func HostTSCkHz() int {
	tscOnce.Do(func() {
		f, err := os.Open("/proc/cpuinfo")
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "cpu MHz" {
				mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err == nil && mhz > 0 {
					tscKHz = int(mhz * 1000)
				}
				return
			}
		}
	})
	return tscKHz
}

// Cmdline returns the kernel command line for cfg.
func (cfg *Config) Cmdline() string {
	parts := []string{"console=ttyS0", "panic=-1"}
	if khz := HostTSCkHz(); khz > 0 {
		parts = append(parts, "tsc_early_khz="+strconv.Itoa(khz))
	}
	if cfg.Append != "" {
		parts = append(parts, cfg.Append)
	}
	return strings.Join(parts, " ")
}

// Args returns QEMU's argument list for cfg (without the binary).
func (cfg *Config) Args() []string {
	machine := cfg.Machine
	if machine == "" {
		machine = "microvm"
	}
	accel := cfg.Accel
	if accel == "" {
		accel = "tcg"
	}
	mem := cfg.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	cpus := cfg.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	args := []string{
		"-M", machine, "-accel", accel,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", cfg.Kernel,
		"-append", cfg.Cmdline(),
	}
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	return append(args, cfg.ExtraArgs...)
}

// Boot runs QEMU until the guest powers off. It succeeds only when the
// marker appeared on the console and QEMU exited with status 0; every
// failure carries the console's tail.
func Boot(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.QEMU == "" {
		cfg.QEMU = DefaultQEMU
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	bin, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (install qemu-system-x86: make deps)", cfg.QEMU, ErrQEMUMissing)
	}
	if cfg.Kernel == "" {
		return nil, fmt.Errorf("no kernel given: %w", ErrKernelMissing)
	}
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, ErrKernelMissing)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	res := &Result{Args: cfg.Args()}
	cmd := exec.Command(bin, res.Args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %w", ErrQEMUFailed, bin, err)
	}
	var console bytes.Buffer
	var kernelAt time.Duration // written by the reader, read after readDone
	markerAt := make(chan time.Duration, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		br := bufio.NewReader(stdout)
		found := false
		for {
			line, err := br.ReadBytes('\n')
			if ts, ok := printkTime(line); ok {
				if at := time.Since(start) - ts; at > 0 && (kernelAt == 0 || at < kernelAt) {
					kernelAt = at
				}
			}
			console.Write(line)
			if !found && cfg.Marker != "" && bytes.Contains(line, []byte(cfg.Marker)) {
				found = true
				markerAt <- time.Since(start)
			}
			if err != nil {
				if err != io.EOF {
					fmt.Fprintf(&console, "\n[bootcheck: console read: %v]\n", err)
				}
				return
			}
		}
	}()
	waitErr := make(chan error, 1)
	go func() {
		<-readDone
		waitErr <- cmd.Wait()
	}()

	var werr error
	timedOut := false
	select {
	case werr = <-waitErr:
	case <-ctx.Done():
		timedOut = true
		cmd.Process.Kill()
		werr = <-waitErr
	}
	res.Total = time.Since(start)
	res.Console = console.Bytes()
	res.KernelAt = kernelAt
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		res.MaxRSSKiB = ru.Maxrss
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	select {
	case res.MarkerAt = <-markerAt:
	default:
	}
	describe := func() string {
		s := fmt.Sprintf("\n  qemu: %s %s", bin, strings.Join(res.Args, " "))
		if e := strings.TrimSpace(stderr.String()); e != "" {
			s += "\n  qemu stderr: " + Tail([]byte(e), 10)
		}
		return s + "\n  console tail:\n" + indent(res.ConsoleTail(20))
	}
	switch {
	case timedOut && ctx.Err() == context.DeadlineExceeded:
		return res, fmt.Errorf("%w after %v (marker seen: %v)%s", ErrTimeout, cfg.Timeout, res.MarkerAt > 0, describe())
	case timedOut:
		return res, fmt.Errorf("guest boot: %w%s", ctx.Err(), describe())
	case werr != nil:
		return res, fmt.Errorf("%w: %w%s", ErrQEMUFailed, werr, describe())
	case cfg.Marker != "" && res.MarkerAt == 0:
		return res, fmt.Errorf("%w: QEMU exited without %q on the console%s", ErrNoMarker, cfg.Marker, describe())
	}
	return res, nil
}

// printkTime parses the "[    1.234567] " prefix of a kernel message.
func printkTime(line []byte) (time.Duration, bool) {
	s := strings.TrimLeft(string(line), "\r")
	if !strings.HasPrefix(s, "[") {
		return 0, false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return 0, false
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(s[1:end]), 64)
	if err != nil || sec < 0 {
		return 0, false
	}
	return time.Duration(sec * float64(time.Second)), true
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// IsTimeout reports whether err is a boot timeout.
func IsTimeout(err error) bool { return errors.Is(err, ErrTimeout) }
