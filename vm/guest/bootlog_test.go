package guest

import (
	"errors"
	"testing"
	"time"
)

func TestParseBootLog(t *testing.T) {
	const log = "[    0.100000] PCI: Fatal: No config space access function found\n" +
		TestInitDmesgMarker + " begin\r\n" +
		"<5>[    0.000000] Linux version 6.1.192-hull\n" +
		"<6>[    0.038467] Kernel command line: tsc=reliable\n" +
		"<7>[    0.135200] calling  acpi_init+0x0/0x44d @ 1\n" +
		"<7>[    0.164600] initcall acpi_init+0x0/0x44d returned 0 after 30000 usecs\n" +
		"<6>[    0.201637] Unpacking initramfs...\r\n" +
		"<7>[    0.249513] initcall fuse_init+0x0/0x12e returned 0 after 22127 usecs\n" +
		"<7>[    0.290860] initcall hpet_insert_resource+0x0/0x1e returned 1 after 8 usecs\n" +
		"<7>[    0.290861] initcall broken+0x0/0x1e returned -19 after 5 usecs\n" +
		"<6>[    0.301599] Run /init as init process\n" +
		"<6>[    0.301600] Run /init as init process\n" +
		TestInitDmesgMarker + " end\n" +
		"<7>[    9.000000] initcall after_end+0x0/0x1 returned 0 after 99 usecs\n"
	bl, err := ParseBootLog([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []Initcall{
		{"acpi_init", 30 * time.Millisecond},
		{"fuse_init", 22127 * time.Microsecond},
		{"hpet_insert_resource", 8 * time.Microsecond},
		{"broken", 5 * time.Microsecond},
	}
	if len(bl.Initcalls) != len(wantCalls) {
		t.Fatalf("initcalls %v, want %v", bl.Initcalls, wantCalls)
	}
	for i, w := range wantCalls {
		if bl.Initcalls[i] != w {
			t.Errorf("initcall %d = %v, want %v", i, bl.Initcalls[i], w)
		}
	}
	for _, tc := range []struct {
		mark string
		at   time.Duration
		ok   bool
	}{
		{"Kernel command line", 38467 * time.Microsecond, true},
		{"Unpacking initramfs", 201637 * time.Microsecond, true},
		{"Run /init as init process", 301599 * time.Microsecond, true}, // the first one
		{"Freeing initrd memory", 0, false},
	} {
		at, ok := bl.Marks[tc.mark]
		if ok != tc.ok || at != tc.at {
			t.Errorf("mark %q = %v, %v; want %v, %v", tc.mark, at, ok, tc.at, tc.ok)
		}
	}
	if s := bl.Slowest(2); len(s) != 2 || s[0].Name != "acpi_init" || s[1].Name != "fuse_init" {
		t.Errorf("Slowest(2) = %v", s)
	}
	if _, err := ParseBootLog([]byte("[    0.1] no copied log\n")); !errors.Is(err, ErrNoBootLog) {
		t.Errorf("console without the log: err %v, want ErrNoBootLog", err)
	}
}
