package container

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openAt opens name read-only and moves it to fd number want (free).
func openAt(t *testing.T, name string, want int) *os.File {
	t.Helper()
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fd != want {
		var st unix.Stat_t
		if unix.Fstat(want, &st) == nil {
			unix.Close(fd)
			t.Fatalf("fd %d is in use: cannot lay out the fd table", want)
		}
		if err := unix.Dup3(fd, want, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	return os.NewFile(uintptr(want), name)
}

// In a long-lived caller (hull-agent) the fd table has holes. The init's
// binary, opened after the init's other files, can then get the number
// just above the highest of them, and the fork's error pipe a lower free
// number: syscall.ForkExec's child moves that pipe up to exactly that
// number before execve (it keeps clear only of the fds it was given),
// and the exec of /proc/self/fd/N found a pipe: EACCES (VM-BENCH's
// "start init: fork/exec /proc/self/fd/20: permission denied"). The
// binary is now one of the fds ForkExec is given.
func TestInitCmdExeFDNotStomped(t *testing.T) {
	exe := "/bin/true"
	if _, err := os.Stat(exe); err != nil {
		t.Skipf("%s: %v", exe, err)
	}
	// A free range well above anything open: holes h1, h2 below the
	// init's only extra file g and the binary at g+1.
	base := 200
	for fd := base; fd < base+4; fd++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			t.Skipf("fd %d is in use", fd)
		}
	}
	// Everything below base is taken for the duration (so that the
	// fork's pipe lands in the holes).
	var fill []int
	for {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fd >= base {
			unix.Close(fd)
			break
		}
		fill = append(fill, fd)
	}
	defer func() {
		for _, fd := range fill {
			unix.Close(fd)
		}
	}()
	h1 := openAt(t, os.DevNull, base)
	h2 := openAt(t, os.DevNull, base+1)
	g := openAt(t, os.DevNull, base+2)
	defer g.Close()
	bin := openAt(t, exe, base+3)
	defer bin.Close()
	cmd := &initCmd{exe: bin, args: []string{"true"}, files: []*os.File{g}}
	h1.Close()
	h2.Close()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wait: %v", err)
	}
}
