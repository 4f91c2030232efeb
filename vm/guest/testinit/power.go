package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// PowerButtonMarker is printed when the power button was pressed. Keep in
// sync with guest.TestInitPowerButtonMarker.
const PowerButtonMarker = "HULL-TESTINIT-POWERBUTTON"

// Linux input event constants (linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
	// inputEventSize is struct input_event on 64-bit: a timeval (16 bytes),
	// type and code (u16 each) and value (s32).
	inputEventSize = 24
)

// powerButton returns a channel closed when an input device reports
// KEY_POWER pressed: the ACPI power button (CONFIG_ACPI_BUTTON) that
// QEMU's system_powerdown presses. Without such a device it never closes.
func powerButton() <-chan struct{} {
	ch := make(chan struct{})
	if _, err := os.Stat("/dev/input"); err != nil {
		// The initramfs has only /dev/console: mount devtmpfs for the
		// event devices (the open console stays usable).
		_ = unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	}
	devs, _ := filepath.Glob("/dev/input/event*")
	pressed := make(chan struct{}, len(devs))
	for _, d := range devs {
		if !isPowerButton(filepath.Base(d)) {
			continue
		}
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		go func() {
			defer f.Close()
			ev := make([]byte, inputEventSize)
			for {
				if _, err := f.Read(ev); err != nil {
					return
				}
				typ := binary.LittleEndian.Uint16(ev[16:])
				code := binary.LittleEndian.Uint16(ev[18:])
				val := int32(binary.LittleEndian.Uint32(ev[20:]))
				if typ == evKey && code == keyPower && val == 1 {
					pressed <- struct{}{}
					return
				}
			}
		}()
	}
	go func() {
		<-pressed
		close(ch)
	}()
	return ch
}

// isPowerButton reports whether input device eventN is a power button (by
// its name in sysfs, "Power Button").
func isPowerButton(event string) bool {
	b, err := os.ReadFile(filepath.Join("/sys/class/input", event, "device", "name"))
	return err == nil && strings.Contains(strings.ToLower(string(b)), "power button")
}
