package label

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeHost builds a fake kernel tree and points host at it for the test.
func fakeHost(t *testing.T, apparmor, selinux, perModuleDir bool) string {
	t.Helper()
	d := t.TempDir()
	old := host
	t.Cleanup(func() { host = old })
	host = hostPaths{
		apparmorParam: filepath.Join(d, "apparmor-enabled"),
		apparmorFS:    filepath.Join(d, "securityfs/apparmor"),
		mountinfo:     filepath.Join(d, "mountinfo"),
		procSelf:      filepath.Join(d, "thread-self"),
		procCurrent:   filepath.Join(d, "current"),
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mi := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
	cur := "kernel"
	if selinux {
		mi += "23 1 0:22 / /sys/fs/selinux rw,relatime - selinuxfs selinuxfs rw\n"
		cur = "system_u:system_r:unconfined_t:s0\x00"
	}
	must(os.WriteFile(host.mountinfo, []byte(mi), 0o644))
	must(os.WriteFile(host.procCurrent, []byte(cur), 0o644))
	if apparmor {
		must(os.WriteFile(host.apparmorParam, []byte("Y\n"), 0o644))
		must(os.MkdirAll(host.apparmorFS, 0o755))
	} else {
		must(os.WriteFile(host.apparmorParam, []byte("N\n"), 0o644))
	}
	must(os.MkdirAll(filepath.Join(host.procSelf, "attr"), 0o755))
	must(os.WriteFile(filepath.Join(host.procSelf, "attr/exec"), nil, 0o644))
	must(os.WriteFile(filepath.Join(host.procSelf, "attr/keycreate"), nil, 0o644))
	if perModuleDir {
		must(os.MkdirAll(filepath.Join(host.procSelf, "attr/apparmor"), 0o755))
		must(os.WriteFile(filepath.Join(host.procSelf, "attr/apparmor/exec"), nil, 0o644))
	}
	return d
}

func read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestThisHost checks the real host: this machine has neither module, so
// a requested label must be refused with a clear message, and empty labels
// accepted. On a host with a module the refusal cannot be tested.
func TestThisHost(t *testing.T) {
	_, aaErr := os.Stat("/sys/kernel/security/apparmor")
	if AppArmorEnabled() != (aaErr == nil && strings.HasPrefix(readOr("/sys/module/apparmor/parameters/enabled"), "Y")) {
		t.Errorf("AppArmorEnabled() = %v disagrees with the host files", AppArmorEnabled())
	}
	if err := Validate("", ""); err != nil {
		t.Errorf("empty labels: %v", err)
	}
	if err := ApplyExec("", ""); err != nil {
		t.Errorf("ApplyExec of empty labels: %v", err)
	}
	aa, se := Features()
	if !*aa.Enabled || !*se.Enabled {
		t.Errorf("Features must report support compiled in (true), whatever the host")
	}
	if !AppArmorEnabled() {
		err := Validate("docker-default", "")
		if !errors.Is(err, ErrNotEnabled) || err.Error() != `apparmor profile "docker-default" requested but AppArmor is not enabled on this host: `+ErrNotEnabled.Error() {
			t.Errorf("Validate of an apparmor profile: %v", err)
		}
		if err := ApplyExec("docker-default", ""); !errors.Is(err, ErrNotEnabled) {
			t.Errorf("ApplyExec of an apparmor profile: %v", err)
		}
		if err := ApplyExec(Unconfined, ""); err != nil {
			t.Errorf("unconfined on a host without AppArmor: %v", err)
		}
	}
	if !SELinuxEnabled() {
		err := Validate("", "system_u:system_r:container_t:s0")
		if !errors.Is(err, ErrNotEnabled) || !strings.Contains(err.Error(), "SELinux is not enabled on this host") {
			t.Errorf("Validate of an selinux label: %v", err)
		}
		if err := SetKeyLabel("system_u:system_r:container_t:s0"); !errors.Is(err, ErrNotEnabled) {
			t.Errorf("SetKeyLabel: %v", err)
		}
		if err := SetKeyLabel(""); err != nil {
			t.Errorf("SetKeyLabel of nothing: %v", err)
		}
		if _, err := MountLabel("system_u:object_r:container_file_t:s0"); !errors.Is(err, ErrNotEnabled) {
			t.Errorf("MountLabel: %v", err)
		}
		s := &specs.Spec{Process: &specs.Process{SelinuxLabel: "system_u:system_r:container_t:s0"}}
		if err := ValidateSpec(s); err == nil || !strings.HasPrefix(err.Error(), "process.selinuxLabel: ") {
			t.Errorf("ValidateSpec does not name the field: %v", err)
		}
	}
}

func readOr(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}

func TestDetection(t *testing.T) {
	for _, tt := range []struct{ aa, se bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		fakeHost(t, tt.aa, tt.se, true)
		if AppArmorEnabled() != tt.aa || SELinuxEnabled() != tt.se {
			t.Errorf("fake host apparmor=%v selinux=%v detected as %v %v", tt.aa, tt.se, AppArmorEnabled(), SELinuxEnabled())
		}
	}
}

func TestApplyExecWrites(t *testing.T) {
	t.Run("apparmor per-module attr", func(t *testing.T) {
		d := fakeHost(t, true, false, true)
		if err := ApplyExec("hull-default", ""); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/apparmor/exec")); got != "exec hull-default" {
			t.Errorf("attr/apparmor/exec = %q", got)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/exec")); got != "" {
			t.Errorf("attr/exec written too: %q", got)
		}
	})
	t.Run("unconfined is written where AppArmor is enabled", func(t *testing.T) {
		d := fakeHost(t, true, false, true)
		if err := ApplyExec(Unconfined, ""); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/apparmor/exec")); got != "exec unconfined" {
			t.Errorf("attr/apparmor/exec = %q", got)
		}
	})
	t.Run("unconfined is a no-op without AppArmor", func(t *testing.T) {
		d := fakeHost(t, false, false, true)
		if err := ApplyExec(Unconfined, ""); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/apparmor/exec")); got != "" {
			t.Errorf("attr/apparmor/exec = %q", got)
		}
	})
	t.Run("apparmor shared attr on old kernels", func(t *testing.T) {
		d := fakeHost(t, true, false, false)
		if err := ApplyExec("hull-default", ""); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/exec")); got != "exec hull-default" {
			t.Errorf("attr/exec = %q", got)
		}
	})
	t.Run("selinux exec label and mount label", func(t *testing.T) {
		d := fakeHost(t, false, true, false)
		l := "system_u:system_r:container_t:s0:c1,c2"
		if err := ApplyExec("", l); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/exec")); got != l {
			t.Errorf("attr/exec = %q", got)
		}
		if err := SetKeyLabel(l); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(d, "thread-self/attr/keycreate")); got != l {
			t.Errorf("attr/keycreate = %q", got)
		}
		opt, err := MountLabel("system_u:object_r:container_file_t:s0")
		if err != nil || opt != `context="system_u:object_r:container_file_t:s0"` {
			t.Errorf("MountLabel = %q, %v", opt, err)
		}
		if err := ApplyExec("some-profile", ""); !errors.Is(err, ErrNotEnabled) {
			t.Errorf("apparmor on a SELinux-only host: %v", err)
		}
	})
}

func TestValidateFormat(t *testing.T) {
	fakeHost(t, true, true, true)
	tests := []struct {
		name, aa, se string
		want         string
	}{
		{"good", "docker-default", "system_u:system_r:container_t:s0", ""},
		{"no level", "", "user_u:role_r:type_t", ""},
		{"newline in profile", "a\nb", "", "contains a NUL or newline"},
		{"blank profile", " x", "", "leading or trailing blanks"},
		{"two fields", "", "user_u:role_r", "is not user:role:type[:level]"},
		{"empty type", "", "user_u:role_r::s0", "empty user, role or type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.aa, tt.se)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate(%q, %q) = %v, want %q", tt.aa, tt.se, err, tt.want)
			}
		})
	}
}
