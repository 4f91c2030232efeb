package vmm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/internal/vmmtest"
)

func TestHasNote(t *testing.T) {
	note := func(name string, typ uint32, desc []byte) []byte {
		n := append([]byte(name), 0)
		for len(n)%4 != 0 {
			n = append(n, 0)
		}
		d := append([]byte(nil), desc...)
		for len(d)%4 != 0 {
			d = append(d, 0)
		}
		h := make([]byte, 12)
		binary.LittleEndian.PutUint32(h[0:], uint32(len(name)+1))
		binary.LittleEndian.PutUint32(h[4:], uint32(len(desc)))
		binary.LittleEndian.PutUint32(h[8:], typ)
		return append(append(h, n...), d...)
	}
	seg := append(note("GNU", 3, []byte{1, 2, 3, 4, 5}), note("Xen", 18, []byte{0, 0, 0, 1})...)
	if !hasNote(seg, binary.LittleEndian, "Xen", 18) {
		t.Error("PVH note not found")
	}
	if hasNote(seg, binary.LittleEndian, "Xen", 17) || hasNote(seg[:20], binary.LittleEndian, "Xen", 18) {
		t.Error("found a note that is not there")
	}
}

func TestRequireELFKernel(t *testing.T) {
	dir := t.TempDir()
	bz := filepath.Join(dir, "bzImage")
	os.WriteFile(bz, []byte("MZ not an elf at all, a bzImage stand-in"), 0o644)
	if err := RequireELFKernel(bz, "firecracker", false); !errors.Is(err, vm.ErrInvalidConfig) || !strings.Contains(err.Error(), "not an ELF vmlinux") {
		t.Errorf("bzImage: %v", err)
	}
	if err := RequireELFKernel(filepath.Join(dir, "none"), "firecracker", false); !errors.Is(err, vm.ErrInvalidConfig) {
		t.Errorf("missing: %v", err)
	}
	// An ELF without a PVH note: this test binary.
	self, _ := os.Executable()
	if err := RequireELFKernel(self, "firecracker", false); err != nil {
		t.Errorf("ELF: %v", err)
	}
	if err := RequireELFKernel(self, "cloud-hypervisor", true); !errors.Is(err, vm.ErrInvalidConfig) || !strings.Contains(err.Error(), "PVH") {
		t.Errorf("ELF without PVH: %v", err)
	}
	// Hull's built minimal kernel has one.
	for _, k := range []string{"../../../build/guest/vmlinux"} {
		if _, err := os.Stat(k); err != nil {
			t.Logf("no built vmlinux (%v): make guest builds it", err)
			continue
		}
		if err := RequireELFKernel(k, "cloud-hypervisor", true); err != nil {
			t.Errorf("built vmlinux: %v", err)
		}
	}
}

func TestFakeVmlinux(t *testing.T) {
	k := filepath.Join(t.TempDir(), "vmlinux")
	if err := vmmtest.WriteFakeVmlinux(k); err != nil {
		t.Fatal(err)
	}
	if isELF, pvh, err := KernelFormat(k); !isELF || !pvh || err != nil {
		t.Fatalf("KernelFormat = %v, %v, %v", isELF, pvh, err)
	}
}
