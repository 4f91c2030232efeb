package container

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sealedExe returns a sealed, read-only memfd copy of the running binary.
// The container's init runs from it (exec'd through /proc/self/fd/N), so
// a process in the container that reaches the init's /proc/<pid>/exe (the
// CVE-2019-5736 attack: #!/proc/self/exe, then reopen for writing) finds
// an anonymous, sealed copy: the host's binary is never reachable.
// The copy is made in the kernel (sendfile), never through user space.
func sealedExe() (*os.File, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	fi, err := self.Stat()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("hull-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "hull-runtime-memfd")
	size := fi.Size()
	for size > 0 {
		n, err := unix.Sendfile(fd, int(self.Fd()), nil, int(size))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("copy runtime binary: %w", err)
		}
		if n == 0 {
			break
		}
		size -= int64(n)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal runtime copy: %w", err)
	}
	return f, nil
}
