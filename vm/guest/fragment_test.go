package guest

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseFragment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"values", "# c\nCONFIG_A=y\n\nCONFIG_B=\"-x\"\n# CONFIG_C is not set\nCONFIG_D=100\n",
			[]string{"CONFIG_A=y", `CONFIG_B="-x"`, "# CONFIG_C is not set", "CONFIG_D=100"}, ""},
		{"garbage", "CONFIG_A=y\nA=y\n", nil, "line 2"},
		{"twice", "CONFIG_A=y\nCONFIG_A=n\n", nil, "CONFIG_A already set on line 1"},
		{"empty", "# nothing\n", nil, "no options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := ParseFragment(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want invalid argument naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range opts {
				got = append(got, o.String())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVerifyConfig(t *testing.T) {
	frag, err := ParseFragment(strings.NewReader("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_S=\"-hull\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		config  string
		dropped []string
	}{
		{"all there", "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_S=\"-hull\"\n", nil},
		{"not-set may be absent", "CONFIG_A=y\nCONFIG_B=y\nCONFIG_S=\"-hull\"\n", nil},
		{"dropped", "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"-hull\"\n", []string{"CONFIG_B=y"}},
		{"changed", "CONFIG_A=m\nCONFIG_B=y\nCONFIG_C=y\nCONFIG_S=\"\"\n", []string{"CONFIG_A=y", "CONFIG_C", "CONFIG_S"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyConfig(frag, []byte(tc.config))
			if tc.dropped == nil {
				if err != nil {
					t.Fatalf("VerifyConfig: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrOptionDropped) {
				t.Fatalf("err = %v, want ErrOptionDropped", err)
			}
			for _, d := range tc.dropped {
				if !strings.Contains(err.Error(), d) {
					t.Errorf("error %q does not name %s", err, d)
				}
			}
		})
	}
}

// TestProjectFragmentDocumented checks Hull's own fragment: it parses, holds
// what the agent and containers need, and every option has a comment above.
func TestProjectFragmentDocumented(t *testing.T) {
	b, err := os.ReadFile("kernel.config")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := ParseFragment(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, o := range opts {
		have[o.Name] = o.Value
	}
	required := []string{
		"CONFIG_64BIT", "CONFIG_KERNEL_LZ4", "CONFIG_PVH", "CONFIG_ACPI", "CONFIG_SERIAL_8250",
		"CONFIG_SERIAL_8250_CONSOLE", "CONFIG_SERIAL_8250_PNP", "CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_PCI",
		"CONFIG_VIRTIO_CONSOLE", "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_VSOCKETS",
		"CONFIG_VIRTIO_FS", "CONFIG_FUSE_FS", "CONFIG_EXT4_FS", "CONFIG_OVERLAY_FS", "CONFIG_EROFS_FS",
		"CONFIG_UTS_NS", "CONFIG_IPC_NS", "CONFIG_USER_NS", "CONFIG_PID_NS", "CONFIG_NET_NS",
		"CONFIG_CGROUPS", "CONFIG_MEMCG", "CONFIG_BLK_CGROUP", "CONFIG_CGROUP_SCHED", "CONFIG_CGROUP_PIDS",
		"CONFIG_CGROUP_FREEZER", "CONFIG_CPUSETS", "CONFIG_SECCOMP_FILTER", "CONFIG_BPF_SYSCALL",
		"CONFIG_CGROUP_BPF", "CONFIG_UNIX98_PTYS", "CONFIG_UNIX", "CONFIG_INET", "CONFIG_BLK_DEV_INITRD",
		"CONFIG_DEVTMPFS", "CONFIG_PRINTK", "CONFIG_ACPI_BUTTON", "CONFIG_INPUT_EVDEV",
		"CONFIG_BLK_CGROUP_IOCOST", "CONFIG_CGROUP_HUGETLB",
	}
	for _, r := range required {
		if have[r] != "y" {
			t.Errorf("kernel.config lacks %s=y", r)
		}
	}
	// A parameter of the built-in command line that a source patch adds
	// needs that patch in patches/ (else the kernel hands it to /init as
	// an unknown parameter).
	for param, patch := range map[string]string{
		"lapic_timer_hz=": "patches/0002-x86-apic-lapic-timer-hz.patch",
		"init_poison=":    "patches/0004-x86-mm-init-poison.patch",
	} {
		if !strings.Contains(have["CONFIG_CMDLINE"], param) {
			continue
		}
		p, err := os.ReadFile(patch)
		if err != nil || !strings.Contains(string(p), `early_param("`+strings.TrimSuffix(param, "=")+`"`) {
			t.Errorf("CONFIG_CMDLINE passes %s but %s does not add it (%v)", param, patch, err)
		}
	}
	// Documented option by option: each option line follows a comment line
	// or another option of the same comment group (signalfd/timerfd/eventfd).
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	prev := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "CONFIG_") && !strings.HasPrefix(prev, "#") && !strings.HasPrefix(prev, "CONFIG_") {
			t.Errorf("kernel.config line %d: %s has no comment saying what it is for", n, line)
		}
		prev = line
	}
}
