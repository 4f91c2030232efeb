package server

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// PowerOffParam on the kernel command line makes PowerOff reboot instead:
// Firecracker ends its VM on a guest reboot, while a power-off without
// ACPI only halts the vCPUs.
const PowerOffParam = "hull.poweroff=reboot"

var (
	cmdlineOnce  sync.Once
	rebootToStop bool
)

// PowerOff syncs and powers the guest off (reboots it when the kernel
// command line has PowerOffParam).
func PowerOff() error {
	unix.Sync()
	cmdlineOnce.Do(func() {
		b, _ := os.ReadFile("/proc/cmdline")
		rebootToStop = hasParam(string(b), PowerOffParam)
	})
	if rebootToStop {
		return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func hasParam(cmdline, param string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == param {
			return true
		}
	}
	return false
}

// Linux input events (linux/input-event-codes.h, struct input_event on
// 64-bit: a timeval, then type and code (u16) and value (s32)).
const (
	evKey          = 0x01
	keyPower       = 116
	inputEventSize = 24
)

// WatchPowerButton calls onPress once when the ACPI power button (the
// input device named "Power Button", CONFIG_ACPI_BUTTON) is pressed, as
// QEMU's system_powerdown does, until ctx ends. Without such a device it
// does nothing.
func WatchPowerButton(ctx context.Context, onPress func()) {
	devs, _ := filepath.Glob("/dev/input/event*")
	var once sync.Once
	for _, d := range devs {
		name, err := os.ReadFile(filepath.Join("/sys/class/input", filepath.Base(d), "device", "name"))
		if err != nil || !strings.Contains(strings.ToLower(string(name)), "power button") {
			continue
		}
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		go func() {
			<-ctx.Done()
			f.Close()
		}()
		go func() {
			defer f.Close()
			ev := make([]byte, inputEventSize)
			for {
				if _, err := f.Read(ev); err != nil {
					return
				}
				if isPowerPress(ev) {
					once.Do(onPress)
					return
				}
			}
		}()
	}
}

// isPowerPress says whether the input event ev is KEY_POWER pressed.
func isPowerPress(ev []byte) bool {
	return len(ev) >= inputEventSize &&
		binary.LittleEndian.Uint16(ev[16:]) == evKey &&
		binary.LittleEndian.Uint16(ev[18:]) == keyPower &&
		int32(binary.LittleEndian.Uint32(ev[20:])) == 1
}
