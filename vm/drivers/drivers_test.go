package drivers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hullproject/hull/vm"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		fs        bool
	}{
		{"", "*qemu.QEMU", true},
		{"qemu", "*qemu.QEMU", true},
		{"cloud-hypervisor", "*cloudhypervisor.CloudHypervisor", true},
		{"firecracker", "*firecracker.Firecracker", false},
	} {
		h, err := New(tc.name, Options{})
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		if got := fmt.Sprintf("%T", h); got != tc.typ {
			t.Errorf("%q: driver %s, want %s", tc.name, got, tc.typ)
		}
		if h.Capabilities().FileSystemSharing != tc.fs {
			t.Errorf("%q: FileSystemSharing %v, want %v", tc.name, !tc.fs, tc.fs)
		}
	}
}

func TestUnknown(t *testing.T) {
	_, err := New("xen", Options{})
	if !errors.Is(err, vm.ErrInvalidConfig) || !strings.Contains(err.Error(), `"xen"`) || !strings.Contains(err.Error(), "cloud-hypervisor") {
		t.Fatalf("err = %v", err)
	}
}

func TestProbe(t *testing.T) {
	t.Setenv("HULL_CLOUD_HYPERVISOR", "/nonexistent/cloud-hypervisor")
	st := Probe()
	if len(st) != 3 || st[0].Name != QEMU || st[1].Name != CloudHypervisor || st[2].Name != Firecracker {
		t.Fatalf("Probe = %+v", st)
	}
	if st[1].Path != "" || !strings.Contains(st[1].Reason, "/nonexistent/cloud-hypervisor") {
		t.Errorf("cloud-hypervisor: %+v", st[1])
	}
	for _, s := range st {
		if (s.Path == "") == (s.Reason == "") {
			t.Errorf("%s: path %q, reason %q: want exactly one", s.Name, s.Path, s.Reason)
		}
	}
	m := Summary()
	if !strings.HasPrefix(m["hypervisor.cloud-hypervisor"], "not available: ") || m["agent_transport"] == "" {
		t.Errorf("Summary = %v", m)
	}
	t.Logf("this host: %v", m)
}
