// Command testinit is the trivial init Hull boots guests with when it only
// needs to know that a kernel reached userspace: the boot tests, the bare
// QEMU boot floor benchmark and KVM detection.
//
// As PID 1 it loads the kernel modules listed in the initramfs' load order
// file (if any, for modular kernels such as Debian's cloud kernel), with
// "hull.probe" on the kernel command line prints what the kernel offers
// (probe.go), with "hull.dmesg" copies the kernel's log buffer to the
// console between HULL-DMESG lines (with initcall_debug: where the
// kernel's boot went, see guest.ParseBootLog), writes Marker to
// /dev/console, stays idle for "hull.idle=<duration>" if asked (cut short
// by the ACPI power button, QMP's system_powerdown: power.go), and powers
// the machine off with reboot(LINUX_REBOOT_CMD_POWER_OFF). Build it static (CGO_ENABLED=0).
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Marker is the line prefix the host looks for on the guest console. Keep
// in sync with guest.TestInitMarker.
const Marker = "HULL-TESTINIT-OK"

const orderFile = "/lib/modules/load.order"

func loadModules(console *os.File) (int, error) {
	f, err := os.Open(orderFile)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		m, err := os.Open(p)
		if err != nil {
			return n, err
		}
		err = unix.FinitModule(int(m.Fd()), "", 0)
		m.Close()
		if err != nil && err != unix.EEXIST {
			return n, fmt.Errorf("finit_module %s: %w", p, err)
		}
		n++
	}
	return n, sc.Err()
}

func main() {
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stdout
	}
	n, err := loadModules(console)
	if err != nil {
		fmt.Fprintf(console, "HULL-TESTINIT-FAIL modules: %v\n", err)
	}
	mountKernelFS()
	if wantsProbe() {
		fmt.Fprintln(console, probe())
	}
	if wantsDmesg() {
		fmt.Fprintf(console, "%s begin\n%s\n%s end\n", DmesgMarker, strings.TrimRight(dmesg(), "\n"), DmesgMarker)
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Fprintf(console, "%s release=%s modules=%d time=%d\n", Marker, unix.ByteSliceToString(uts.Release[:]), n, time.Now().Unix())
	console.Sync()
	if d := idleFor(); d > 0 {
		// Idle, unless the ACPI power button (QMP system_powerdown) is
		// pressed first: then power off at once, as a guest should.
		select {
		case <-time.After(d):
		case <-powerButton():
			fmt.Fprintln(console, PowerButtonMarker)
		}
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(console, "HULL-TESTINIT-FAIL power off: %v\n", err)
	}
	// PID 1 exiting panics the kernel; with panic=-1 and QEMU's -no-reboot
	// the VM still ends.
	os.Exit(1)
}
