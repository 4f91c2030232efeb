package vmmtest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
)

// WriteFakeVmlinux writes a minimal ELF64 file whose only segment is a
// note with a PVH entry (owner "Xen", type 18): what the drivers' kernel
// checks look for, and nothing that boots.
func WriteFakeVmlinux(path string) error {
	le := binary.LittleEndian
	var note bytes.Buffer
	binary.Write(&note, le, []uint32{4, 4, 18}) // namesz, descsz, type
	note.WriteString("Xen\x00")
	binary.Write(&note, le, uint32(0x1000000)) // entry
	const ehsize, phsize = 64, 56
	off := uint64(ehsize + phsize)
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: 0x1000000, Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: 1, Shentsize: 64,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, le, hdr)
	binary.Write(&b, le, elf.Prog64{Type: uint32(elf.PT_NOTE), Off: off, Filesz: uint64(note.Len()), Memsz: uint64(note.Len()), Align: 4})
	b.Write(note.Bytes())
	return os.WriteFile(path, b.Bytes(), 0o644)
}
