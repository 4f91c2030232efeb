// Package bpf is the loadable half of runtime/seccomp: a compiled seccomp
// filter (Program) and its installation with one seccomp(2) call. It
// needs neither cgo nor libseccomp, so that the container init
// (cmd/hull-runtime-init, a pure Go binary) can load the filters the
// runtime compiled.
package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Program is a compiled seccomp filter: the classic-BPF instructions that
// libseccomp generated for a profile, and the seccomp(2) flags to install
// them with. runtime/seccomp.Compile makes one in the runtime process (at create time,
// where the profile is validated anyway); the container init receives it
// (it is plain JSON) and calls Load, which needs neither cgo nor
// libseccomp and costs a single syscall (~0.8 ms of kernel time for the
// default profile). Compiling that profile for its three architectures
// takes ~15 ms, so doing it once instead of in every init is
// what keeps container start fast (see seccomp.Cache). Filter also holds the ENOSYS stub (see
// runtime/seccomp's package doc).
type Program struct {
	// Filter holds the struct sock_filter array in host byte order.
	Filter []byte `json:"filter"`
	// Flags are SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW and
	// _WAIT_KILLABLE_RECV as the profile asked; TSYNC is always added and
	// NEW_LISTENER when Notify is set.
	Flags uint `json:"flags,omitempty"`
	// Notify is set when a rule uses SCMP_ACT_NOTIFY: Load then returns
	// the listener fd.
	Notify bool `json:"notify,omitempty"`
}

// ErrInvalid marks a program that is not a filter the kernel could take
// (runtime/seccomp's ErrInvalid is the same error).
var ErrInvalid = errors.New("invalid seccomp profile")

// SockFilterSize is sizeof(struct sock_filter); MaxInsns is the kernel's
// limit on one filter (BPF_MAXINSNS).
const (
	SockFilterSize = 8
	MaxInsns       = 4096
)

// Instructions decodes Filter into the kernel's structure.
func (p *Program) Instructions() ([]unix.SockFilter, error) {
	if len(p.Filter) == 0 || len(p.Filter)%SockFilterSize != 0 {
		return nil, fmt.Errorf("seccomp program of %d bytes is not a sock_filter array: %w", len(p.Filter), ErrInvalid)
	}
	n := len(p.Filter) / SockFilterSize
	if n > MaxInsns {
		return nil, fmt.Errorf("seccomp program has %d instructions, more than the kernel takes: %w", n, ErrInvalid)
	}
	out := make([]unix.SockFilter, n)
	for i := range out {
		b := p.Filter[i*SockFilterSize:]
		out[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:2]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:8]),
		}
	}
	return out, nil
}

// Load installs the program on every thread of the calling process
// (SECCOMP_FILTER_FLAG_TSYNC) and, for a Notify program, returns the
// listener fd (close-on-exec); otherwise the fd is nil. It never sets
// no_new_privs: without it the caller needs CAP_SYS_ADMIN (see the
// package doc for the order). Call it with the OS thread locked, just
// before execve.
func (p *Program) Load() (*os.File, error) {
	ins, err := p.Instructions()
	if err != nil {
		return nil, err
	}
	flags := p.Flags | unix.SECCOMP_FILTER_FLAG_TSYNC
	if p.Notify {
		// TSYNC_ESRCH makes a TSYNC failure an error instead of a thread
		// id, so that the return value can be the listener fd.
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	} else {
		flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	prog := unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(ins)
	if errno != 0 {
		if errno == unix.EACCES {
			return nil, fmt.Errorf("linux.seccomp: load filter: %w (without no_new_privs the filter must be loaded before dropping CAP_SYS_ADMIN)", errno)
		}
		return nil, fmt.Errorf("linux.seccomp: load filter (flags %#x): %w", flags, errno)
	}
	if p.Notify {
		return os.NewFile(r, "seccomp-listener"), nil
	}
	if r != 0 {
		return nil, fmt.Errorf("linux.seccomp: load filter: thread %d could not be synchronized", r)
	}
	return nil, nil
}
