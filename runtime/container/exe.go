package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/initproc"
)

// InitBinary is the name of the pure Go container init installed beside
// hull-runtime (cmd/hull-runtime-init). See initExe.
const InitBinary = "hull-runtime-init"

// HelperBinary is the name of the cgo helper installed beside a pure Go
// hull-runtime (cmd/hull-runtime-helper): the inits that join namespaces
// by path (its runtime/nsenter C constructor) and seccomp compilation
// with libseccomp. See initExe and compileSeccomp.
const HelperBinary = "hull-runtime-helper"

// initProgram is the binary a container's init (or an exec'd process) is
// started from.
type initProgram struct {
	// args are argv.
	args []string
	// helper is set when the program is InitBinary or HelperBinary (not
	// this binary).
	helper string
	// file is the protected open binary, started through its fd (see
	// initCmd.exe); it must stay open until the init has started.
	file *os.File
}

func (p *initProgram) Close() {
	if p != nil && p.file != nil {
		p.file.Close()
	}
}

// initExe returns the program to start a container's init from.
//
// Which binary: the init of a container that joins no namespace
// (needSelf false) is InitBinary from hull-runtime's own directory when it
// is installed there, owned like hull-runtime and writable by nobody else:
// a pure Go binary without libc, cgo or the CLI's packages, whose start
// costs about half a millisecond less CPU than hull-runtime's. Joining
// namespaces needs the nsenter C constructor (needSelf true): this binary
// when it holds it (initproc.NsenterLinked: a cgo hull-runtime,
// hull-agent), else HelperBinary beside it (the pure Go hull-runtime of
// make build, which spares every call glibc's start-up: ~0.7 ms of
// cpuid probing under virtualization). This binary is also the fallback
// when InitBinary is missing. A helper of another build refuses to run
// (protocol check, see initproc.ProtocolVersion).
//
// How it is protected (CVE-2019-5736: a process in the container that
// reaches the init's /proc/<pid>/exe must not be able to write the host's
// binary): the binary is opened through a private read-only bind mount,
// made for this one start with open_tree(OPEN_TREE_CLONE) and
// mount_setattr(MOUNT_ATTR_RDONLY). The mount is detached, in no mount
// namespace: nothing on the host changes, nothing is shared between runtime
// processes (so builds and versions running side by side cannot disturb one
// another, unlike one shared bind per binary under /run), and it goes away
// with the last process that uses it. /proc/<pid>/exe of the init then
// names a file on a read-only mount that only the host's root could reach
// to remount: opening it for writing fails with EROFS. It costs ~0.05 ms.
// Without the rights for it (rootless, or a kernel before 5.12) the
// fallback is a sealed memfd copy of the binary (runc 1.1's way; ~4 ms for
// hull-runtime, less for InitBinary).
func initExe(needSelf bool) (*initProgram, error) {
	// This binary is opened through /proc/self/exe, which works even
	// when its path is gone: hull-agent, PID 1 of a VM guest, runs
	// containers with this package from an initramfs that switch_root
	// emptied.
	src, args, helper := "/proc/self/exe", []string{"hull-runtime", "init"}, ""
	switch {
	case !needSelf:
		if h, ok := besideSelf(InitBinary); ok {
			src, args, helper = h, []string{InitBinary}, h
		}
	case !initproc.NsenterLinked:
		h, ok := besideSelf(HelperBinary)
		if !ok {
			return nil, fmt.Errorf("%w: joining namespaces by path needs %s installed beside this runtime (this build has no nsenter of its own)", errdefs.ErrNotImplemented, HelperBinary)
		}
		src, args, helper = h, []string{HelperBinary, "init"}, h
	}
	f, err := openReadOnlyBind(src)
	if err != nil {
		if f, err = sealedCopy(src); err != nil {
			return nil, err
		}
	}
	return &initProgram{args: args, helper: helper, file: f}, nil
}

// preparedInit is the initExe that PrepareInit started, for the next
// Create to take.
var preparedInit struct {
	mu sync.Mutex
	ch chan preparedExe
}

// PrepareInit starts making the binary of a container init that joins no
// namespace ready (initExe: its private read-only mount, ~0.15 ms) in the
// background, for the next Create of this process to take: hull-runtime
// calls it first thing when its command line asks for run or create, so
// that this overlaps the parsing of the command line. Without it, Create
// starts the same work itself, beside the reading of config.json.
func PrepareInit() {
	preparedInit.mu.Lock()
	defer preparedInit.mu.Unlock()
	if preparedInit.ch == nil {
		preparedInit.ch = startInitExe()
	}
}

// takePreparedInit returns the initExe PrepareInit started (once), or
// starts one.
func takePreparedInit() chan preparedExe {
	preparedInit.mu.Lock()
	ch := preparedInit.ch
	preparedInit.ch = nil
	preparedInit.mu.Unlock()
	if ch != nil {
		return ch
	}
	return startInitExe()
}

func startInitExe() chan preparedExe {
	ch := make(chan preparedExe, 1)
	go func() {
		p, err := initExe(false)
		ch <- preparedExe{p, err}
	}()
	return ch
}

// besideSelf returns the path of the program name in this binary's
// directory when it is there and usable (usableHelper).
func besideSelf(name string) (string, bool) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil || !filepath.IsAbs(self) {
		return "", false
	}
	h := filepath.Join(filepath.Dir(self), name)
	return h, usableHelper(self, h)
}

// usableHelper reports whether helper is a regular executable file owned
// by the owner of self and writable by no one else, in a directory that
// no one else can write either (so that it cannot be swapped between this
// check and its opening).
func usableHelper(self, helper string) bool {
	var hs, ss, ds unix.Stat_t
	if unix.Stat(helper, &hs) != nil || unix.Stat(self, &ss) != nil || unix.Stat(filepath.Dir(helper), &ds) != nil {
		return false
	}
	return hs.Mode&unix.S_IFMT == unix.S_IFREG && hs.Mode&0o111 != 0 && hs.Mode&0o022 == 0 && hs.Uid == ss.Uid &&
		ds.Mode&0o022 == 0 && (ds.Uid == ss.Uid || ds.Uid == 0)
}

// openReadOnlyBind opens path through a detached read-only bind mount of
// it (see initExe).
func openReadOnlyBind(path string) (*os.File, error) {
	tree, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_tree %s: %w", path, err)
	}
	defer unix.Close(tree)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return nil, fmt.Errorf("mount_setattr %s: %w", path, err)
	}
	// The mount's root is the file itself. The open file keeps the mount
	// alive after tree is closed.
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(tree), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Flags&unix.ST_RDONLY == 0 {
		unix.Close(fd)
		return nil, errors.New("the private bind mount is not read-only")
	}
	return os.NewFile(uintptr(fd), path), nil
}

// sealedCopy returns a sealed memfd copy of path, the fallback of
// initExe. The copy is made in the kernel (sendfile).
func sealedCopy(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate(filepath.Base(path), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), filepath.Base(path)+"-memfd")
	size := fi.Size()
	for size > 0 {
		n, err := unix.Sendfile(fd, int(src.Fd()), nil, int(size))
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

// initProtocolEnv is the environment entry that makes an init of another
// build refuse to run.
func initProtocolEnv() string {
	return initproc.EnvProtocol + "=" + initproc.ProtocolVersion
}
