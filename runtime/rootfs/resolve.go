package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Path resolution inside the rootfs.
//
// The fast path is openat2(2) with RESOLVE_IN_ROOT on a handle of the
// rootfs: the kernel resolves every component (symlinks included, ".."
// clamped) as if the rootfs were "/", atomically, so a symlink swapped in
// concurrently still cannot lead out. Directories are created one
// component at a time with mkdirat on a handle that was itself resolved
// that way. This is what filepath-securejoin does too; securejoin then
// also re-checks each handle through a private procfs (against an
// attacker who overmounted /proc), which costs ~40 syscalls per path and
// showed up as the biggest part of the init's time. Here /proc is the
// host's, mounted before the container exists, so the re-check buys
// nothing. Where openat2 is missing (kernels before 5.6) securejoin does
// the work.

var (
	openat2Once sync.Once
	openat2OK   bool
)

func haveOpenat2() bool {
	openat2Once.Do(func() {
		fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
		if err == nil {
			unix.Close(fd)
			openat2OK = true
		}
	})
	return openat2OK
}

// inRoot opens path inside the root directory fd (O_PATH).
func inRoot(rootfd int, path string, flags uint64) (int, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(rootfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | flags,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// resolver holds an open handle of the rootfs.
type resolver struct {
	rootfs string
	fd     int
}

var (
	resolvers   = map[string]*resolver{}
	resolversMu sync.Mutex
)

func getResolver(rootfs string) (*resolver, error) {
	resolversMu.Lock()
	defer resolversMu.Unlock()
	if r, ok := resolvers[rootfs]; ok {
		return r, nil
	}
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	r := &resolver{rootfs: rootfs, fd: fd}
	resolvers[rootfs] = r
	return r, nil
}

// closeResolvers drops the rootfs handles (before pivot_root).
func closeResolvers() {
	resolversMu.Lock()
	defer resolversMu.Unlock()
	for k, r := range resolvers {
		unix.Close(r.fd)
		delete(resolvers, k)
	}
}

// mkdirAll makes dest (a directory) inside the rootfs.
func (r *resolver) mkdirAll(dest string, mode uint32) error {
	parts := strings.Split(strings.Trim(filepath.Clean("/"+dest), "/"), "/")
	prefix := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		next := prefix + "/" + p
		fd, err := inRoot(r.fd, next, unix.O_DIRECTORY)
		if err == nil {
			unix.Close(fd)
			prefix = next
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", next, err)
		}
		parent, err := inRoot(r.fd, prefix, unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		err = unix.Mkdirat(parent, p, mode)
		unix.Close(parent)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", next, err)
		}
		// A dangling symlink named p: resolve it again, which fails
		// with ENOENT when it points at nothing.
		if fd, err := inRoot(r.fd, next, unix.O_DIRECTORY); err != nil {
			return fmt.Errorf("%s: %w", next, err)
		} else {
			unix.Close(fd)
		}
		prefix = next
	}
	return nil
}

// target resolves dest inside rootfs, creating it (a directory, or an
// empty file when file is set), and returns an O_PATH handle to it.
func target(rootfs, dest string, file bool) (*os.File, error) {
	if !filepath.IsAbs(dest) {
		dest = "/" + dest
	}
	if !haveOpenat2() {
		return targetSecurejoin(rootfs, dest, file)
	}
	r, err := getResolver(rootfs)
	if err != nil {
		return nil, err
	}
	mkdir := dest
	if file {
		mkdir = filepath.Dir(dest)
	}
	if err := r.mkdirAll(mkdir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", mkdir, err)
	}
	if file {
		parent, err := inRoot(r.fd, filepath.Dir(dest), unix.O_DIRECTORY)
		if err != nil {
			return nil, err
		}
		// O_PATH handles cannot create: reopen the directory for that.
		dfd, err := unix.Openat(parent, ".", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		unix.Close(parent)
		if err != nil {
			return nil, err
		}
		fd, err := unix.Openat(dfd, filepath.Base(dest), unix.O_CREAT|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		unix.Close(dfd)
		if err == nil {
			unix.Close(fd)
		} else if err != unix.EEXIST && err != unix.ELOOP && err != unix.EISDIR {
			return nil, fmt.Errorf("create %s: %w", dest, err)
		}
	}
	fd, err := inRoot(r.fd, dest, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	return os.NewFile(uintptr(fd), dest), nil
}

func targetSecurejoin(rootfs, dest string, file bool) (*os.File, error) {
	if file {
		if err := securejoin.MkdirAll(rootfs, filepath.Dir(dest), 0o755); err != nil {
			return nil, fmt.Errorf("create parent of %s: %w", dest, err)
		}
		dir, err := securejoin.OpenInRoot(rootfs, filepath.Dir(dest))
		if err != nil {
			return nil, err
		}
		d, err := securejoin.Reopen(dir, unix.O_DIRECTORY|unix.O_RDONLY)
		dir.Close()
		if err != nil {
			return nil, err
		}
		fd, err := unix.Openat(int(d.Fd()), filepath.Base(dest), unix.O_CREAT|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		d.Close()
		if err == nil {
			unix.Close(fd)
		} else if err != unix.EEXIST && err != unix.ELOOP && err != unix.EISDIR {
			return nil, fmt.Errorf("create %s: %w", dest, err)
		}
	} else if err := securejoin.MkdirAll(rootfs, dest, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	return securejoin.OpenInRoot(rootfs, dest)
}

// reopenMount opens dest again: the O_PATH handle taken before a mount
// refers to the directory under it, not the new mount.
func reopenMount(_ *os.File, opts Options, dest string) (*os.File, error) {
	if !haveOpenat2() {
		return securejoin.OpenInRoot(opts.Rootfs, dest)
	}
	r, err := getResolver(opts.Rootfs)
	if err != nil {
		return nil, err
	}
	fd, err := inRoot(r.fd, dest, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	return os.NewFile(uintptr(fd), dest), nil
}
