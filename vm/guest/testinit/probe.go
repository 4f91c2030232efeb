package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeMarker starts the line that probe prints.
const ProbeMarker = "HULL-PROBE"

// cmdlineParam returns the value of a "key" or "key=value" kernel
// command-line parameter, and whether it is there.
func cmdlineParam(key string) (string, bool) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", false
	}
	for _, f := range strings.Fields(string(b)) {
		if k, v, _ := strings.Cut(f, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// wantsProbe reports whether the kernel command line holds "hull.probe".
func wantsProbe() bool {
	_, ok := cmdlineParam("hull.probe")
	return ok
}

// wantsDmesg reports whether the kernel command line holds "hull.dmesg":
// init then copies the kernel's log buffer to the console (between
// DmesgMarker lines) before its marker. With "initcall_debug loglevel=6"
// the kernel records every initcall's duration without printing it on the
// slow emulated UART during boot, so the timings are those of a quiet boot.
func wantsDmesg() bool {
	_, ok := cmdlineParam("hull.dmesg")
	return ok
}

// DmesgMarker starts and ends the kernel log that init copies for
// "hull.dmesg". Keep in sync with guest.TestInitDmesgMarker.
const DmesgMarker = "HULL-DMESG"

// dmesg returns the kernel's log buffer (syslog(2) READ_ALL).
func dmesg() string {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || n <= 0 {
		return fmt.Sprintf("(kernel log: %v)", err)
	}
	buf := make([]byte, n)
	m, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return fmt.Sprintf("(kernel log: %v)", err)
	}
	return string(buf[:m])
}

// idleFor returns how long "hull.idle=<duration>" asks init to stay idle
// before powering off (to measure what an idle guest costs the host).
func idleFor() time.Duration {
	v, ok := cmdlineParam("hull.idle")
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0
	}
	return d
}

// probe reports what the kernel offers the agent and containers, so tests
// can check the guest kernel's configuration from inside: the virtio
// devices bound to drivers, the cgroup v2 controllers, the filesystems, the
// namespaces and seccomp. Each field is a comma-separated sorted list.
func probe() string {
	var out []string
	add := func(k string, v []string) {
		sort.Strings(v)
		out = append(out, k+"="+strings.Join(v, ","))
	}

	var virtio []string
	devs, _ := filepath.Glob("/sys/bus/virtio/devices/*")
	for _, d := range devs {
		id, err := os.ReadFile(filepath.Join(d, "device"))
		if err != nil {
			continue
		}
		// Count only devices a driver took.
		if _, err := os.Stat(filepath.Join(d, "driver")); err != nil {
			continue
		}
		virtio = append(virtio, strings.TrimSpace(string(id)))
	}
	add("virtio", virtio)

	var ctrls []string
	if err := unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""); err == nil {
		if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
			ctrls = strings.Fields(string(b))
		}
		// The freezer of cgroup v2 is a file in every non-root cgroup.
		if os.Mkdir("/sys/fs/cgroup/probe", 0o755) == nil {
			if _, err := os.Stat("/sys/fs/cgroup/probe/cgroup.freeze"); err == nil {
				ctrls = append(ctrls, "freeze")
			}
			os.Remove("/sys/fs/cgroup/probe")
		}
		unix.Unmount("/sys/fs/cgroup", 0)
	}
	add("cgroup2", ctrls)

	var fss []string
	if b, err := os.ReadFile("/proc/filesystems"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				fss = append(fss, f[len(f)-1])
			}
		}
	}
	add("fs", fss)

	var nss []string
	if ents, err := os.ReadDir("/proc/self/ns"); err == nil {
		for _, e := range ents {
			nss = append(nss, e.Name())
		}
	}
	add("ns", nss)

	var feats []string
	if b, err := os.ReadFile("/proc/self/status"); err == nil && strings.Contains(string(b), "\nSeccomp_filters:") {
		feats = append(feats, "seccomp")
	}
	if _, err := os.Stat("/proc/sys/kernel/unprivileged_bpf_disabled"); err == nil {
		feats = append(feats, "bpf")
	}
	if _, err := os.Stat("/dev/ptmx"); err == nil || unix.Mount("devpts", "/dev", "devpts", 0, "") == nil {
		feats = append(feats, "devpts")
		unix.Unmount("/dev", 0)
	}
	for _, fam := range []struct {
		name   string
		domain int
	}{{"unix", unix.AF_UNIX}, {"inet", unix.AF_INET}, {"inet6", unix.AF_INET6}, {"vsock", unix.AF_VSOCK}, {"packet", unix.AF_PACKET}} {
		typ := unix.SOCK_STREAM
		if fam.domain == unix.AF_PACKET {
			typ = unix.SOCK_DGRAM
		}
		if fd, err := unix.Socket(fam.domain, typ, 0); err == nil {
			unix.Close(fd)
			feats = append(feats, fam.name)
		}
	}
	// The ACPI power button, an input device (system_powerdown).
	if ents, err := os.ReadDir("/sys/class/input"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "event") && isPowerButton(e.Name()) {
				feats = append(feats, "powerbutton")
				break
			}
		}
	}
	add("features", feats)
	return fmt.Sprintf("%s %s", ProbeMarker, strings.Join(out, " "))
}

// mountKernelFS mounts /proc and /sys for probe.
func mountKernelFS() {
	unix.Mount("proc", "/proc", "proc", 0, "")
	unix.Mount("sysfs", "/sys", "sysfs", 0, "")
}
