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
	"time"
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
// in every QEMU. Should QEMU touch them again (a reset), they fault back
// in from the unchanged file. Guest RAM and QEMU's own code are left
// alone.
//
// The kernel does not page out pages another process maps too: when
// another QEMU maps the same files at the time (it is booting, or it
// never released them), the shared pages stay mapped in both (PSS splits
// them). So while some stay resident, ReleaseBootFiles tries again in the
// background (releaseRetries after the call) until QEMU ends: once the
// other QEMU exited, they go. Two long-lived VMs that booted at the same
// time keep sharing the pages both mapped (each counts half in PSS): the
// other's release skips them for the same reason.
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
	pid := cmd.Process.Pid
	n, left, err := pageOutFiles(pid, files)
	q.afterRelease()
	if err == nil && left > 0 {
		go q.retryRelease(pid, files)
	}
	return n, err
}

// releaseRetries are the delays, from the first ReleaseBootFiles, of its
// background retries while boot-file pages stay resident in QEMU.
// Early and often first: VMs booting beside this one (sharing the pages)
// are usually up, released and often gone within seconds. A retry with
// nothing resident costs one read of QEMU's smaps.
var releaseRetries = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute}

func (q *QEMU) retryRelease(pid int, files []string) {
	start := time.Now()
	for _, d := range releaseRetries {
		select {
		case <-q.done:
			return
		case <-time.After(time.Until(start.Add(d))):
		}
		_, left, err := pageOutFiles(pid, files)
		q.afterRelease()
		if err != nil || left == 0 {
			q.opts.Logger.Debug("boot files released", "pid", pid, "after", time.Since(start).Round(time.Millisecond), "err", err)
			return
		}
	}
}

func (q *QEMU) afterRelease() {
	if q.opts.AfterRelease != nil {
		q.opts.AfterRelease()
	}
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

// pageOutFiles pages out process pid's mappings of files and reads the
// files back into the page cache. It returns the bytes of mappings it
// advised, and how many KiB of them are still resident after (pages
// another process maps too).
func pageOutFiles(pid int, files []string) (advised int, leftKiB int64, err error) {
	want := bootFiles{ids: map[fileID]bool{}, paths: map[string]bool{}}
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil {
			return 0, 0, &os.PathError{Op: "stat", Path: f, Err: err}
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
		return 0, 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	ranges, resident, err := mappingsOf(pid, want)
	if err != nil || resident == 0 {
		return 0, 0, err
	}
	// struct iovec, filled with the other process's addresses.
	iov := make([]struct{ base, len uint64 }, len(ranges))
	for i, r := range ranges {
		iov[i].base, iov[i].len = r[0], r[1]-r[0]
	}
	n, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), unix.MADV_PAGEOUT, 0, 0)
	if errno != 0 {
		return 0, resident, fmt.Errorf("process_madvise(%d, MADV_PAGEOUT): %w", pid, errno)
	}
	_, left, err := mappingsOf(pid, want)
	if left < resident {
		// Some pages left the page cache with QEMU's mapping.
		for _, f := range files {
			prefetch(f)
		}
	}
	return int(n), left, err
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
// the files in want, and how many KiB of them are resident.
func mappingsOf(pid int, want bootFiles) ([][2]uint64, int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var out [][2]uint64
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.HasSuffix(fields[0], ":") {
			// A "Key: value kB" line of the mapping above.
			if in && fields[0] == "Rss:" && len(fields) >= 2 {
				n, _ := strconv.ParseInt(fields[1], 10, 64)
				rss += n
			}
			continue
		}
		// start-end perms offset dev inode path
		in = false
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
		in = true
		out = append(out, [2]uint64{start, end})
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("/proc/%d/smaps: %w", pid, err)
	}
	return out, rss, nil
}
