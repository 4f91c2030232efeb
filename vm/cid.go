package vm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"unsafe"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// vhostVsockSetGuestCID is VHOST_VSOCK_SET_GUEST_CID, _IOW(0xAF, 0x60,
// __u64) (linux/vhost.h).
const vhostVsockSetGuestCID = 0x4008AF60

// CIDs 0-2 are the hypervisor, local and host addresses; 2^32-1 is
// VMADDR_CID_ANY.
const (
	firstGuestCID = 3
	lastGuestCID  = 1<<32 - 2
	cidTries      = 1000
)

// ErrNoCID: no free guest CID was found.
var ErrNoCID = fmt.Errorf("no free vsock guest CID: %w", errdefs.ErrResourceExhausted)

// GuestCID is a vsock context ID held for one guest: File is the open
// vhost-vsock device on which the CID was claimed (VHOST_VSOCK_SET_GUEST_CID
// fails with EADDRINUSE for a CID another device holds, so the claim is
// host-wide and race-free). Hand File to the hypervisor (QEMU's
// vhost-vsock vhostfd=) and close it when the VM ends.
type GuestCID struct {
	CID  uint32
	File *os.File
}

// Close releases the CID.
func (g *GuestCID) Close() error {
	if g == nil || g.File == nil {
		return nil
	}
	return g.File.Close()
}

// AllocateCID opens dev (VhostVsockDevice) and claims a free guest CID on
// it, starting from a random one.
func AllocateCID(dev string) (*GuestCID, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock: open %s: %w", dev, err)
	}
	start := firstGuestCID + rand.Uint32N(lastGuestCID-firstGuestCID+1)
	cid, err := allocateCID(start, cidTries, func(cid uint64) error {
		v := cid
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), vhostVsockSetGuestCID, uintptr(unsafe.Pointer(&v)))
		if errno != 0 {
			return errno
		}
		return nil
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vsock: %s: %w", dev, err)
	}
	return &GuestCID{CID: cid, File: f}, nil
}

// allocateCID tries CIDs from start upwards (wrapping past the last guest
// CID to the first) until set accepts one; EADDRINUSE moves on, any other
// error stops.
func allocateCID(start uint32, tries int, set func(cid uint64) error) (uint32, error) {
	if start < firstGuestCID || start > lastGuestCID {
		start = firstGuestCID
	}
	cid := start
	for i := 0; i < tries; i++ {
		err := set(uint64(cid))
		if err == nil {
			return cid, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return 0, fmt.Errorf("claim guest CID %d: %w", cid, err)
		}
		if cid == lastGuestCID {
			cid = firstGuestCID
		} else {
			cid++
		}
	}
	return 0, fmt.Errorf("%w: %d CIDs from %d are taken", ErrNoCID, tries, start)
}
