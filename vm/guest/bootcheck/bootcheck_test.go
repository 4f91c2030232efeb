package bootcheck

import (
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", Config{Kernel: "/k", Initrd: "/i"},
			[]string{"-M microvm", "-accel tcg", "-m 256", "-smp 1", "-no-reboot", "-serial stdio", "-kernel /k", "-initrd /i", "-nodefaults"}},
		{"overrides", Config{Kernel: "/k", Machine: "q35", Accel: "tcg,tb-size=32", MemoryMiB: 128, CPUs: 2, ExtraArgs: []string{"-x"}},
			[]string{"-M q35", "-accel tcg,tb-size=32", "-m 128", "-smp 2", "-x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := " " + strings.Join(tc.cfg.Args(), " ") + " "
			for _, w := range tc.want {
				if !strings.Contains(args, " "+w+" ") {
					t.Errorf("args %q lack %q", args, w)
				}
			}
			if tc.cfg.Initrd == "" && strings.Contains(args, "-initrd") {
				t.Errorf("args %q have -initrd without an initrd", args)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	c := (&Config{Append: "quiet"}).Cmdline()
	for _, w := range []string{"console=ttyS0", "panic=-1", "quiet"} {
		if !strings.Contains(c, w) {
			t.Errorf("cmdline %q lacks %q", c, w)
		}
	}
	if HostTSCkHz() > 0 && !strings.Contains(c, "tsc_early_khz=") {
		t.Errorf("cmdline %q lacks tsc_early_khz although the host frequency is known", c)
	}
}

func TestTail(t *testing.T) {
	if got := Tail([]byte("a\nb\nc\n"), 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
}

func TestPrintkTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"[    0.166881] PCI: Fatal\n", 166881 * time.Microsecond, true},
		{"\r[   12.000000] x", 12 * time.Second, true},
		{"HULL-TESTINIT-OK release=x\n", 0, false},
		{"[ not a time ] x", 0, false},
	} {
		got, ok := printkTime([]byte(tc.in))
		if ok != tc.ok || (ok && (got-tc.want > time.Microsecond || tc.want-got > time.Microsecond)) {
			t.Errorf("printkTime(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
