package vmm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/vm"
)

// DefaultVirtiofsd is QEMU's virtiofsd as Debian installs it.
const DefaultVirtiofsd = "/usr/lib/qemu/virtiofsd"

// StartVirtiofsd starts a virtiofsd serving s on the vhost-user socket
// sock and waits (up to 5 s) until the socket is there: the VMM connects
// to it when the VM is created. The share's binds are mounted in a mount
// namespace of virtiofsd's own, so the host's mount table never holds
// them and they vanish with it.
func StartVirtiofsd(ctx context.Context, bin string, s vm.Share, sock string) (*Process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("virtiofsd %s: %w", bin, vm.ErrHypervisorMissing)
	}
	cache := s.Cache
	if cache == "" {
		cache = "always"
	}
	_ = os.Remove(sock)
	spec := Spec{Path: bin, Args: []string{"--socket-path=" + sock,
		"-o", "source=" + s.Source, "-o", "cache=" + cache, "-o", "log_level=warn"}}
	if len(s.Binds) > 0 {
		spec.Isolate = func() error { return mountBinds(s) }
	}
	p, err := Start(spec)
	if err != nil {
		return nil, fmt.Errorf("virtiofsd for %q: %w", s.Tag, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := WaitForSocket(wctx, p, sock, fmt.Sprintf("virtiofsd for %q (%s)", s.Tag, s.Source)); err != nil {
		p.Kill()
		p.waitGroupGone()
		return nil, err
	}
	return p, nil
}

// mountBinds moves the calling (locked) thread into a new mount namespace,
// a slave of the host's, and mounts s.Binds under s.Source.
func mountBinds(s vm.Share) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	for _, b := range s.Binds {
		target := filepath.Join(s.Source, b.Target)
		flags := uintptr(unix.MS_BIND)
		if b.Recursive {
			flags |= unix.MS_REC
		}
		if err := unix.Mount(b.Source, target, "", flags, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.Source, target, err)
		}
		if b.ReadOnly {
			attr := 0
			if b.Recursive {
				attr = unix.AT_RECURSIVE
			}
			err := unix.MountSetattr(-1, target, uint(attr), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
			if err == unix.ENOSYS {
				err = unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
			}
			if err != nil {
				return fmt.Errorf("make bind %s read-only: %w", target, err)
			}
		}
	}
	return nil
}
