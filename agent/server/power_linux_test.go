package server

import (
	"encoding/binary"
	"testing"
)

func TestHasParam(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    bool
	}{
		{"console=ttyS0 panic=-1 hull.poweroff=reboot\n", true},
		{"hull.poweroff=reboot", true},
		{"console=ttyS0 xhull.poweroff=reboot", false},
		{"console=ttyS0 hull.poweroff=rebootx", false},
		{"", false},
	} {
		if got := hasParam(tc.cmdline, PowerOffParam); got != tc.want {
			t.Errorf("hasParam(%q) = %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}

func TestIsPowerPress(t *testing.T) {
	ev := func(typ, code uint16, val int32) []byte {
		b := make([]byte, inputEventSize)
		binary.LittleEndian.PutUint16(b[16:], typ)
		binary.LittleEndian.PutUint16(b[18:], code)
		binary.LittleEndian.PutUint32(b[20:], uint32(val))
		return b
	}
	for _, tc := range []struct {
		name string
		ev   []byte
		want bool
	}{
		{"press", ev(evKey, keyPower, 1), true},
		{"release", ev(evKey, keyPower, 0), false},
		{"other key", ev(evKey, 30, 1), false},
		{"sync event", ev(0, 0, 0), false},
		{"short", make([]byte, 8), false},
	} {
		if got := isPowerPress(tc.ev); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
