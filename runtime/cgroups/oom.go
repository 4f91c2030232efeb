package cgroups

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	lib "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"golang.org/x/sys/unix"
)

// OOM notification is written by hand: runc keeps it in libcontainer
// (notify_linux.go), not in the extracted cgroups library.

func (m *manager) OOMKillCount() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.layout == Unified {
		return fs2.OOMKillCount(m.v2Path)
	}
	dir := m.v1Paths["memory"]
	if dir == "" {
		return 0, fmt.Errorf("%w: the memory controller is not mounted", ErrNoCgroup)
	}
	return fs.OOMKillCount(dir)
}

func (m *manager) NotifyOOM(ctx context.Context) (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.layout == Unified {
		return notifyOOMv2(ctx, m.v2Path)
	}
	dir := m.v1Paths["memory"]
	if dir == "" {
		return nil, fmt.Errorf("%w: the memory controller is not mounted", ErrNoCgroup)
	}
	return notifyOOMv1(ctx, dir)
}

// notifyOOMv1 registers an eventfd for memory.oom_control through
// cgroup.event_control. The kernel also signals the eventfd when the cgroup
// is removed, which ends the stream.
func notifyOOMv1(ctx context.Context, dir string) (<-chan struct{}, error) {
	oc, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, fmt.Errorf("oom notification: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		oc.Close()
		return nil, fmt.Errorf("oom notification: eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(oc.Fd()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		ev.Close()
		oc.Close()
		return nil, fmt.Errorf("oom notification: registering with %s: %w", dir, err)
	}
	ch := make(chan struct{}, 1)
	stop := context.AfterFunc(ctx, func() { ev.Close() })
	go func() {
		defer close(ch)
		defer stop()
		defer oc.Close()
		defer ev.Close()
		buf := make([]byte, 8)
		for {
			if _, err := ev.Read(buf); err != nil {
				return
			}
			if binary.NativeEndian.Uint64(buf) == 0 {
				continue
			}
			if _, err := os.Lstat(filepath.Join(dir, "cgroup.event_control")); err != nil {
				return // the cgroup is gone
			}
			select {
			case ch <- struct{}{}:
			default: // one pending event is enough
			}
		}
	}()
	return ch, nil
}

// notifyOOMv2 watches memory.events with inotify and reports each rise of
// its "oom" counter; it ends when the group's directory is removed.
func notifyOOMv2(ctx context.Context, dir string) (<-chan struct{}, error) {
	events := filepath.Join(dir, "memory.events")
	if _, err := os.Stat(events); err != nil {
		return nil, fmt.Errorf("%w: oom notification needs the memory controller in %s: %w", ErrNoCgroup, dir, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("oom notification: inotify: %w", err)
	}
	in := os.NewFile(uintptr(fd), "oom-inotify")
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		in.Close()
		return nil, fmt.Errorf("oom notification: watching %s: %w", events, err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Join(dir, "cgroup.events"), unix.IN_MODIFY); err != nil {
		in.Close()
		return nil, fmt.Errorf("oom notification: watching cgroup.events: %w", err)
	}
	// the files of a removed cgroup never report their removal; the
	// directory does (IN_DELETE_SELF)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_DELETE_SELF); err != nil {
		in.Close()
		return nil, fmt.Errorf("oom notification: watching %s: %w", dir, err)
	}
	last, _ := readKey(dir, "memory.events", "oom")
	ch := make(chan struct{}, 1)
	stop := context.AfterFunc(ctx, func() { in.Close() })
	go func() {
		defer close(ch)
		defer stop()
		defer in.Close()
		buf := make([]byte, 4096)
		for {
			// a deadline too, so a removal that slipped past inotify is
			// still noticed
			_ = in.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := in.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				return
			}
			if n, err := readKey(dir, "memory.events", "oom"); err == nil && n > last {
				last = n
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, nil
}

// readKey reads "key value" lines from a cgroup file.
func readKey(dir, file, key string) (uint64, error) {
	s, err := lib.ReadFile(dir, file)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s/%s has no %q", dir, file, key)
}
