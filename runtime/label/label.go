// Package label applies the Linux security-module labels of a container:
// the AppArmor profile (process.apparmorProfile) and the SELinux process
// and mount labels (process.selinuxLabel, linux.mountLabel).
//
// It talks to the kernel directly through procfs (attr/apparmor/exec,
// attr/exec) rather than through libapparmor or
// github.com/opencontainers/selinux: the work is a few writes of one line
// each, and doing it here keeps the container init free of cgo and of the
// selinux library's process-wide caches.
//
// # Hosts without AppArmor or SELinux
//
// When a label is requested but the security module is not enabled on the
// host, Validate and ApplyExec fail with an error wrapping ErrNotEnabled,
// for example
//
//	apparmor profile "docker-default" requested but AppArmor is not enabled on this host
//
// The runtime spec would allow ignoring the label, and runc ignores SELinux
// labels on such hosts; Hull refuses instead, because a label is a request
// for confinement and silently running unconfined is the worse surprise.
// A caller that wants the label dropped clears it from the spec (a daemon
// building specs should do so when the host lacks the module). Empty labels, and the
// AppArmor profile "unconfined", are always accepted and then do nothing.
//
// # Detection
//
//   - AppArmor is enabled when /sys/module/apparmor/parameters/enabled
//     reads "Y" and /sys/kernel/security/apparmor exists (securityfs).
//   - SELinux is enabled when a selinuxfs is mounted (looked up in
//     /proc/self/mountinfo) and the current process label is not "kernel".
//
// # Threads
//
// ApplyExec writes the calling thread's attributes (/proc/thread-self):
// the caller locks the OS thread and calls execve on it; the labels take
// effect at that execve.
package label

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Errors of this package; test with errors.Is.
var (
	// ErrNotEnabled marks a label requested on a host whose security
	// module is not enabled.
	ErrNotEnabled = errors.New("security module not enabled on this host")
	// ErrInvalid marks a label that is malformed.
	ErrInvalid = errors.New("invalid security label")
)

// Unconfined is the AppArmor profile that confines nothing; asking for it
// on a host without AppArmor is accepted and does nothing, since that is
// what the process gets anyway.
const Unconfined = "unconfined"

// hostPaths are the kernel interfaces the package reads and writes; the
// tests point them at a fake tree.
type hostPaths struct {
	apparmorParam string // "Y" when the AppArmor module is enabled
	apparmorFS    string // securityfs directory of AppArmor
	mountinfo     string
	procSelf      string // /proc/thread-self for writes
	procCurrent   string // the current SELinux label
}

var host = hostPaths{
	apparmorParam: "/sys/module/apparmor/parameters/enabled",
	apparmorFS:    "/sys/kernel/security/apparmor",
	mountinfo:     "/proc/self/mountinfo",
	procSelf:      "/proc/thread-self",
	procCurrent:   "/proc/self/attr/current",
}

// AppArmorEnabled reports whether AppArmor confines processes on this host.
func AppArmorEnabled() bool {
	data, err := os.ReadFile(host.apparmorParam)
	if err != nil || !bytes.HasPrefix(data, []byte("Y")) {
		return false
	}
	_, err = os.Stat(host.apparmorFS)
	return err == nil
}

// SELinuxEnabled reports whether SELinux is enabled on this host.
func SELinuxEnabled() bool {
	if selinuxfsMount() == "" {
		return false
	}
	data, err := os.ReadFile(host.procCurrent)
	if err != nil {
		return false
	}
	cur := strings.TrimRight(string(data), "\x00\n")
	return cur != "" && cur != "kernel"
}

// selinuxfsMount returns where selinuxfs is mounted, or "".
func selinuxfsMount() string {
	f, err := os.Open(host.mountinfo)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source options
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "selinuxfs" && len(fields) > 4 {
				return fields[4]
			}
		}
	}
	return ""
}

// Features reports the AppArmor and SELinux parts of the runtime-spec
// features document. The spec defines "enabled" there as "support is
// compiled in, unrelated to whether the host supports it" (runc reports
// true on hosts without either module too), so both are true; whether
// this host has the modules is AppArmorEnabled and SELinuxEnabled.
func Features() (*features.Apparmor, *features.Selinux) {
	yes := true
	return &features.Apparmor{Enabled: &yes}, &features.Selinux{Enabled: &yes}
}

// checkText refuses values the kernel interfaces cannot carry.
func checkText(what, v string) error {
	if strings.ContainsAny(v, "\x00\n") {
		return fmt.Errorf("%s %q contains a NUL or newline: %w", what, v, ErrInvalid)
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%s %q has leading or trailing blanks: %w", what, v, ErrInvalid)
	}
	return nil
}

// checkSELinux checks the shape user:role:type[:level] of an SELinux label.
func checkSELinux(what, l string) error {
	if err := checkText(what, l); err != nil {
		return err
	}
	parts := strings.SplitN(l, ":", 4)
	if len(parts) < 3 {
		return fmt.Errorf("%s %q is not user:role:type[:level]: %w", what, l, ErrInvalid)
	}
	for _, p := range parts[:3] {
		if p == "" {
			return fmt.Errorf("%s %q has an empty user, role or type: %w", what, l, ErrInvalid)
		}
	}
	return nil
}

// Validate checks an AppArmor profile name and an SELinux process label
// (either may be empty) and that the host can apply them.
func Validate(apparmorProfile, selinuxLabel string) error {
	if apparmorProfile != "" {
		if err := checkText("apparmor profile", apparmorProfile); err != nil {
			return err
		}
		if !AppArmorEnabled() && apparmorProfile != Unconfined {
			return fmt.Errorf("apparmor profile %q requested but AppArmor is not enabled on this host: %w", apparmorProfile, ErrNotEnabled)
		}
	}
	if selinuxLabel != "" {
		if err := checkSELinux("selinux label", selinuxLabel); err != nil {
			return err
		}
		if !SELinuxEnabled() {
			return fmt.Errorf("selinux label %q requested but SELinux is not enabled on this host: %w", selinuxLabel, ErrNotEnabled)
		}
	}
	return nil
}

// ValidateSpec checks every label of s: process.apparmorProfile,
// process.selinuxLabel and linux.mountLabel. Errors name the field.
func ValidateSpec(s *specs.Spec) error {
	if s == nil {
		return nil
	}
	if p := s.Process; p != nil {
		if err := Validate(p.ApparmorProfile, ""); err != nil {
			return fmt.Errorf("process.apparmorProfile: %w", err)
		}
		if err := Validate("", p.SelinuxLabel); err != nil {
			return fmt.Errorf("process.selinuxLabel: %w", err)
		}
	}
	if s.Linux != nil && s.Linux.MountLabel != "" {
		if _, err := MountLabel(s.Linux.MountLabel); err != nil {
			return fmt.Errorf("linux.mountLabel: %w", err)
		}
	}
	return nil
}

// ApplyExec arranges for the next execve of the calling thread to run
// under apparmorProfile and selinuxProcessLabel (either may be empty, which
// leaves that module alone). See the package doc for hosts without the
// module and for threads.
func ApplyExec(apparmorProfile, selinuxProcessLabel string) error {
	if err := Validate(apparmorProfile, selinuxProcessLabel); err != nil {
		return err
	}
	if apparmorProfile != "" && (apparmorProfile != Unconfined || AppArmorEnabled()) {
		// Kernels since 5.8 have a per-module directory; older ones only
		// the shared attr/exec.
		p := filepath.Join(host.procSelf, "attr/apparmor/exec")
		if _, err := os.Stat(p); err != nil {
			p = filepath.Join(host.procSelf, "attr/exec")
		}
		if err := writeAttr(p, "exec "+apparmorProfile); err != nil {
			return fmt.Errorf("set apparmor profile %q: %w", apparmorProfile, err)
		}
	}
	if selinuxProcessLabel != "" {
		if err := writeAttr(filepath.Join(host.procSelf, "attr/exec"), selinuxProcessLabel); err != nil {
			return fmt.Errorf("set selinux exec label %q: %w", selinuxProcessLabel, err)
		}
	}
	return nil
}

// SetKeyLabel labels the session keyring the calling thread creates next
// (process.selinuxLabel, written to attr/keycreate), as runc does before
// it makes the container's keyring. Empty does nothing; a label on a host
// without SELinux is an error, as for ApplyExec.
func SetKeyLabel(selinuxLabel string) error {
	if selinuxLabel == "" {
		return nil
	}
	if err := Validate("", selinuxLabel); err != nil {
		return err
	}
	if err := writeAttr(filepath.Join(host.procSelf, "attr/keycreate"), selinuxLabel); err != nil {
		return fmt.Errorf("set selinux keyring label %q: %w", selinuxLabel, err)
	}
	return nil
}

func writeAttr(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte(v))
	return err
}

// MountLabel returns the mount(2) option that labels a filesystem with
// label (context="<label>"), to append to the data of tmpfs, devpts,
// mqueue and other mounts the runtime creates. An empty label gives "".
func MountLabel(label string) (string, error) {
	if label == "" {
		return "", nil
	}
	if err := checkSELinux("selinux mount label", label); err != nil {
		return "", err
	}
	if !SELinuxEnabled() {
		return "", fmt.Errorf("selinux mount label %q requested but SELinux is not enabled on this host: %w", label, ErrNotEnabled)
	}
	return fmt.Sprintf("context=%q", label), nil
}
