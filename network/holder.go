package network

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// socketHolder names the host process that has a socket on the mapping's
// port ("pid 123 (nginx)"), or "" when it cannot tell. It reads the host's
// /proc/net tables and then the fds under /proc; it runs only after a bind
// test failed, so its cost does not matter.
func socketHolder(p PortMapping) string {
	// /proc/net follows the thread group leader's network namespace; read
	// this thread's own, the one the bind test ran in.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	netDir := fmt.Sprintf("/proc/self/task/%d/net", unix.Gettid())
	inodes := map[string]bool{}
	files := []string{netDir + "/tcp", netDir + "/tcp6"}
	if p.Protocol == "udp" {
		files = []string{netDir + "/udp", netDir + "/udp6"}
	}
	want := fmt.Sprintf(":%04X", p.HostPort)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			// TCP: only listeners (state 0A); UDP: any bound socket.
			if p.Protocol != "udp" && fields[3] != "0A" {
				continue
			}
			inodes["socket:["+fields[9]+"]"] = true
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, pd := range procs {
		fds, err := os.ReadDir(filepath.Join(pd, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(pd, "fd", fd.Name()))
			if err != nil || !inodes[l] {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(pd))
			comm, _ := os.ReadFile(filepath.Join(pd, "comm"))
			if pid == os.Getpid() {
				return fmt.Sprintf("pid %d (%s, this process)", pid, strings.TrimSpace(string(comm)))
			}
			return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
		}
	}
	return ""
}
