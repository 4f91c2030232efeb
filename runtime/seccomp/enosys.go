//go:build cgo

package seccomp

import (
	"encoding/binary"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// The ENOSYS stub. A profile whose default action denies (ERRNO, KILL,
// TRAP) would also deny syscalls newer than the profile with EPERM, and
// libc only falls back to an older syscall on ENOSYS (fchmodat2 ->
// fchmodat, and so on). As runc does, Compile therefore puts a few BPF
// instructions in front of libseccomp's program: for each architecture it
// knows, a syscall number above the highest one the profile names answers
// ENOSYS, as a kernel without that syscall would. Everything at or below
// that number goes to the profile unchanged.

// auditArchs maps libseccomp architectures to the kernel's AUDIT_ARCH
// values found in seccomp_data.arch. Architectures missing here get no
// stub.
var auditArchs = map[libseccomp.ScmpArch]uint32{
	libseccomp.ArchAMD64:   unix.AUDIT_ARCH_X86_64,
	libseccomp.ArchX86:     unix.AUDIT_ARCH_I386,
	libseccomp.ArchARM64:   unix.AUDIT_ARCH_AARCH64,
	libseccomp.ArchARM:     unix.AUDIT_ARCH_ARM,
	libseccomp.ArchPPC64LE: unix.AUDIT_ARCH_PPC64LE,
	libseccomp.ArchS390X:   unix.AUDIT_ARCH_S390X,
	libseccomp.ArchS390:    unix.AUDIT_ARCH_S390,
	libseccomp.ArchRISCV64: unix.AUDIT_ARCH_RISCV64,
}

// x32Bit marks x32 syscall numbers, which share AUDIT_ARCH_X86_64.
const x32Bit = 0x40000000

// BPF opcodes and seccomp_data offsets the stub uses.
const (
	bpfLdAbs    = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq      = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgt      = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	bpfJge      = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfRet      = unix.BPF_RET | unix.BPF_K
	offNr       = 0
	offArch     = 4
	retENOSYS   = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	labelEnd    = -1
	labelNoJump = -2
)

// needsStub reports whether s denies by default (so that new syscalls
// would wrongly get the denial instead of ENOSYS).
func needsStub(s *specs.LinuxSeccomp) bool {
	switch s.DefaultAction {
	case specs.ActErrno:
		return s.DefaultErrnoRet == nil || *s.DefaultErrnoRet != uint(unix.ENOSYS)
	case specs.ActKill, specs.ActKillThread, specs.ActKillProcess, specs.ActTrap:
		return true
	}
	return false
}

// maxSyscall is the highest syscall number s names on arch (-1: none).
func maxSyscall(s *specs.LinuxSeccomp, arch libseccomp.ScmpArch) int64 {
	max := int64(-1)
	for _, sc := range s.Syscalls {
		for _, n := range sc.Names {
			nr, err := libseccomp.GetSyscallFromNameByArch(n, arch)
			if err != nil || nr < 0 {
				continue // unknown here, or a multiplexed pseudo-syscall
			}
			if int64(nr) > max {
				max = int64(nr)
			}
		}
	}
	return max
}

// stubAsm collects instructions whose jumps name targets by index, with
// labelEnd meaning "the first instruction after the stub".
type stubAsm struct {
	ins     []unix.SockFilter
	targets [][2]int // jt, jf targets per instruction (labelNoJump: fall through)
}

func (a *stubAsm) emit(code uint16, k uint32, jt, jf int) int {
	a.ins = append(a.ins, unix.SockFilter{Code: code, K: k})
	a.targets = append(a.targets, [2]int{jt, jf})
	return len(a.ins) - 1
}

// resolve turns the targets into relative offsets.
func (a *stubAsm) resolve() bool {
	end := len(a.ins)
	for i, t := range a.targets {
		for j, target := range t {
			if target == labelNoJump {
				continue
			}
			if target == labelEnd {
				target = end
			}
			off := target - i - 1
			if off < 0 || off > 255 {
				return false
			}
			if j == 0 {
				a.ins[i].Jt = uint8(off)
			} else {
				a.ins[i].Jf = uint8(off)
			}
		}
	}
	return true
}

// enosysStub returns the encoded stub for s over the architectures archs
// (the native one and the profile's), or nil when none is needed.
func enosysStub(s *specs.LinuxSeccomp, archs []libseccomp.ScmpArch) []byte {
	if !needsStub(s) {
		return nil
	}
	has := map[libseccomp.ScmpArch]bool{}
	for _, a := range archs {
		has[a] = true
	}
	a := &stubAsm{}
	a.emit(bpfLdAbs, offArch, labelNoJump, labelNoJump)
	blocks := 0
	for _, arch := range archs {
		audit, ok := auditArchs[arch]
		if !ok || arch == libseccomp.ArchX32 {
			continue
		}
		max := maxSyscall(s, arch)
		if max < 0 {
			continue
		}
		// if arch != audit: go to the next block (patched below).
		jeq := a.emit(bpfJeq, audit, labelNoJump, 0)
		a.emit(bpfLdAbs, offNr, labelNoJump, labelNoJump)
		if arch == libseccomp.ArchAMD64 {
			// x32 numbers share this arch value: compare them with the
			// x32 maximum, or leave them to the profile.
			x32Max := int64(-1)
			if has[libseccomp.ArchX32] {
				x32Max = maxSyscall(s, libseccomp.ArchX32)
			}
			if x32Max >= x32Bit {
				jge := a.emit(bpfJge, x32Bit, 0, labelNoJump) // patched: to the x32 check
				a.emit(bpfJgt, uint32(max), labelNoJump, labelEnd)
				a.emit(bpfRet, retENOSYS, labelNoJump, labelNoJump)
				a.targets[jge][0] = len(a.ins)
				a.emit(bpfJgt, uint32(x32Max), labelNoJump, labelEnd)
				a.emit(bpfRet, retENOSYS, labelNoJump, labelNoJump)
			} else {
				a.emit(bpfJge, x32Bit, labelEnd, labelNoJump)
				a.emit(bpfJgt, uint32(max), labelNoJump, labelEnd)
				a.emit(bpfRet, retENOSYS, labelNoJump, labelNoJump)
			}
		} else {
			a.emit(bpfJgt, uint32(max), labelNoJump, labelEnd)
			a.emit(bpfRet, retENOSYS, labelNoJump, labelNoJump)
		}
		// A "jt" of labelNoJump means fall through (offset 0).
		a.targets[jeq] = [2]int{labelNoJump, len(a.ins)}
		blocks++
	}
	if blocks == 0 || !a.resolve() {
		return nil
	}
	out := make([]byte, 0, len(a.ins)*sockFilterSize)
	for _, in := range a.ins {
		out = binary.NativeEndian.AppendUint16(out, in.Code)
		out = append(out, in.Jt, in.Jf)
		out = binary.NativeEndian.AppendUint32(out, in.K)
	}
	return out
}
