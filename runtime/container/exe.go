package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ExeCacheDir holds read-only bind mounts of runtime binaries; see
// runtimeExe.
const ExeCacheDir = "/run/hull-runtime.exe"

// runtimeExe returns the path of the binary a container's init (or an
// exec'd process) is started from, such that a process in the container
// that reaches the init's /proc/<pid>/exe (CVE-2019-5736: a
// "#!/proc/self/exe" program, then reopening the fd for writing) cannot
// change the host's runtime binary.
//
// The path is a read-only bind mount of the running binary in
// ExeCacheDir, made once per binary (named by device, inode, size and
// mtime) and kept: every later container starts from it at the cost of
// one stat and one statfs. So one mount stays on the host per installed
// runtime binary; making the entry of a new binary drops the others. A write through it fails with EROFS whatever
// the writer's privileges, and only the host's mount namespace could
// remount it. It was measured against the alternative, a sealed memfd
// copy of the binary per container (runc 1.1's way): the copy of the ~10
// MB binary cost about 4 ms per create on this machine, the bind about
// 0.05 ms. The memfd copy is kept as the fallback when the mount cannot
// be made (no CAP_SYS_ADMIN on the host, for example).
//
// The returned file, when non-nil, must stay open until the init has
// started (it backs the /proc/self/fd path of the fallback).
func runtimeExe() (string, *os.File, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("%x-%x-%x-%x.%x", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	p := filepath.Join(ExeCacheDir, name)
	// Only root makes (and can use) the shared binds; another user gets
	// the memfd copy.
	if os.Geteuid() == 0 {
		if roMount(p) {
			return p, nil, nil
		}
		if err := makeExeBind(p); err == nil && roMount(p) {
			return p, nil, nil
		}
	}
	f, err := sealedExe()
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())), f, nil
}

// roMount reports whether p is on a read-only mount.
func roMount(p string) bool {
	var sfs unix.Statfs_t
	return unix.Statfs(p, &sfs) == nil && sfs.Flags&unix.ST_RDONLY != 0
}

func makeExeBind(p string) error {
	// 0711: the init of a user-namespaced container runs it as a
	// mapped uid.
	if err := os.MkdirAll(ExeCacheDir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(ExeCacheDir, 0o711); err != nil {
		return err
	}
	lock, err := os.Open(ExeCacheDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	if roMount(p) {
		return nil
	}
	// Entries of older builds (an earlier mtime, in the name) are
	// dropped, detached: a process started from one keeps its binary.
	if ents, err := os.ReadDir(ExeCacheDir); err == nil {
		for _, e := range ents {
			if exeMtime(e.Name()) < exeMtime(filepath.Base(p)) {
				old := filepath.Join(ExeCacheDir, e.Name())
				unix.Unmount(old, unix.MNT_DETACH)
				os.Remove(old)
			}
		}
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o500)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	f.Close()
	if err := unix.Mount("/proc/self/exe", p, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	// nosuid, nodev; exec must stay allowed even if /run is noexec.
	if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unix.Unmount(p, unix.MNT_DETACH)
		return err
	}
	return nil
}

// sealedExe returns a sealed memfd copy of the running binary, the
// fallback of runtimeExe. The copy is made in the kernel (sendfile).
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

// exeMtime reads the mtime (seconds) from a cache entry's name.
func exeMtime(name string) int64 {
	parts := strings.Split(strings.SplitN(name, ".", 2)[0], "-")
	if len(parts) != 4 {
		return 0
	}
	v, _ := strconv.ParseInt(parts[3], 16, 64)
	return v
}
