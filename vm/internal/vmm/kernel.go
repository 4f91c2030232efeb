package vmm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/hullproject/hull/vm"
)

// xenElfnotePhys32Entry is the ELF note (owner "Xen") holding a kernel's
// PVH entry point.
const xenElfnotePhys32Entry = 18

// KernelFormat describes the kernel file at path: whether it is an ELF
// (an uncompressed vmlinux rather than a bzImage) and whether it has a PVH
// entry note.
func KernelFormat(path string) (isELF, pvh bool, err error) {
	raw, err := os.Open(path)
	if err != nil {
		return false, false, err
	}
	magic := make([]byte, 4)
	_, merr := io.ReadFull(raw, magic)
	raw.Close()
	if merr != nil || string(magic) != elf.ELFMAG {
		return false, false, nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		if hasNote(b, f.ByteOrder, "Xen", xenElfnotePhys32Entry) {
			return true, true, nil
		}
	}
	return true, false, nil
}

// hasNote walks an ELF note segment for a note of owner name and type typ.
func hasNote(b []byte, bo binary.ByteOrder, name string, typ uint32) bool {
	align := func(n uint32) uint32 { return (n + 3) &^ 3 }
	for len(b) >= 12 {
		namesz, descsz, t := bo.Uint32(b[0:4]), bo.Uint32(b[4:8]), bo.Uint32(b[8:12])
		b = b[12:]
		if uint32(len(b)) < align(namesz) {
			return false
		}
		n := bytes.TrimRight(b[:namesz], "\x00")
		b = b[align(namesz):]
		if uint32(len(b)) < align(descsz) {
			return false
		}
		b = b[align(descsz):]
		if string(n) == name && t == typ {
			return true
		}
	}
	return false
}

// RequireELFKernel fails with vm.ErrInvalidConfig unless the kernel is an
// uncompressed ELF vmlinux (with a PVH entry note when pvh is set), which
// Cloud Hypervisor and Firecracker boot and a bzImage is not.
func RequireELFKernel(path, driver string, pvh bool) error {
	isELF, hasPVH, err := KernelFormat(path)
	if err != nil {
		return fmt.Errorf("%w: kernel %s: %w", vm.ErrInvalidConfig, path, err)
	}
	if !isELF {
		return fmt.Errorf("%w: kernel %s is not an ELF vmlinux (a bzImage?): %s boots an uncompressed vmlinux (build/guest/vmlinux)", vm.ErrInvalidConfig, path, driver)
	}
	if pvh && !hasPVH {
		return fmt.Errorf("%w: kernel %s has no PVH entry note (CONFIG_PVH): %s boots vmlinux through PVH", vm.ErrInvalidConfig, path, driver)
	}
	return nil
}
