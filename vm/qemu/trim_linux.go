package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotRunning is returned by ReleaseBootFiles when QEMU is not running.
var ErrNotRunning = errors.New("qemu is not running")

// ReleaseBootFiles drops QEMU's resident pages of the kernel and initrd
// files once the guest has booted (call it after the agent answered).
//
// QEMU keeps both mapped for the VM's whole life: the kernel's ELF
// segments (PVH boot of vmlinux) as the ROMs a system reset would copy into
// guest RAM again, and the initrd for fw_cfg, from which the firmware
// copies it into guest RAM at boot. After boot the guest never reads them
// again (and Hull runs QEMU with -no-reboot), yet they stay resident and
// count in QEMU's PSS: about 25 MiB for Hull's vmlinux and agent.cpio,
// a sixth of an idle container's host memory (bench/vm_bench_test.go).
//
// It asks the kernel to page those mappings out (process_madvise
// MADV_PAGEOUT, Linux >= 5.10, needs CAP_SYS_NICE). The pages are clean
// file pages, so they are unmapped and, when no other process maps them,
// dropped from the page cache; then it reads the files back into the
// page cache (~30 ms here), so the next VM's boot does not read them from
// disk on its critical path. Call it off the critical path. The
// host keeps one cached, reclaimable copy of the files, mapped by no
// process (as for any file read recently), instead of a resident copy
// in every QEMU. Pages another QEMU maps at the time stay mapped (they
// are shared, and PSS splits them already). Should QEMU touch them again
// (a reset), they fault back in from the unchanged file. Guest RAM and
// QEMU's own code are left alone.
//
// It returns how many bytes of mappings it advised (not how many pages
// were resident).
func (q *QEMU) ReleaseBootFiles() (int, error) {
	q.mu.Lock()
	cmd, cfg := q.cmd, q.cfg
	q.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0, ErrNotRunning
	}
	select {
	case <-q.done:
		return 0, ErrNotRunning
	default:
	}
	var files []string
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		if f != "" {
			files = append(files, f)
		}
	}
	return pageOutFiles(cmd.Process.Pid, files)
}

// fileID is a file's device (as /proc/<pid>/maps prints it) and inode.
type fileID struct {
	dev string
	ino uint64
}

// bootFiles is what pageOutFiles looks for in /proc/<pid>/maps: the
// files' device and inode, or else their resolved paths (on stacked file
// systems the maps line may name another device).
type bootFiles struct {
	ids   map[fileID]bool
	paths map[string]bool
}

func (b bootFiles) match(id fileID, path string) bool {
	return b.ids[id] || b.paths[path]
}

// pageOutFiles pages out process pid's mappings of files.
func pageOutFiles(pid int, files []string) (int, error) {
	want := bootFiles{ids: map[fileID]bool{}, paths: map[string]bool{}}
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil {
			return 0, &os.PathError{Op: "stat", Path: f, Err: err}
		}
		want.ids[fileID{fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev)), st.Ino}] = true
		if p, err := filepath.EvalSymlinks(f); err == nil {
			if p, err = filepath.Abs(p); err == nil {
				want.paths[p] = true
			}
		}
	}
	// The pidfd first: should pid end and be reused before the madvise,
	// the call fails instead of advising another process.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	ranges, err := mappingsOf(pid, want)
	if err != nil {
		return 0, err
	}
	if len(ranges) == 0 {
		return 0, nil
	}
	// struct iovec, filled with the other process's addresses.
	iov := make([]struct{ base, len uint64 }, len(ranges))
	for i, r := range ranges {
		iov[i].base, iov[i].len = r[0], r[1]-r[0]
	}
	n, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), unix.MADV_PAGEOUT, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("process_madvise(%d, MADV_PAGEOUT): %w", pid, errno)
	}
	for _, f := range files {
		prefetch(f)
	}
	return int(n), nil
}

// prefetch reads file into the page cache (best effort). A plain read:
// POSIX_FADV_WILLNEED reads at most the device's readahead window (8 MiB
// here), not the whole file.
func prefetch(file string) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.CopyBuffer(io.Discard, f, make([]byte, 256<<10))
}

// mappingsOf returns the [start, end) address ranges of pid's mappings of
// the files in want.
func mappingsOf(pid int, want bootFiles) ([][2]uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		ino, err := strconv.ParseUint(fields[4], 10, 64)
		if err != nil || ino == 0 || !want.match(fileID{fields[3], ino}, strings.Join(fields[5:], " ")) {
			continue
		}
		a, b, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(a, 16, 64)
		end, err2 := strconv.ParseUint(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, [2]uint64{start, end})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/proc/%d/maps: %w", pid, err)
	}
	return out, nil
}
