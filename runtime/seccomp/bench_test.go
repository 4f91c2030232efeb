//go:build cgo

package seccomp

import "testing"

// BenchmarkValidateDefault measures what create pays for the default
// profile: the static checks plus building the libseccomp filter.
func BenchmarkValidateDefault(b *testing.B) {
	s := DefaultFor([]string{"CAP_CHOWN", "CAP_SYS_CHROOT", "CAP_KILL"})
	for b.Loop() {
		if err := Validate(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileDefault measures compiling the default profile to a
// Program (what create does once; the init then loads it with one
// seccomp(2) call).
func BenchmarkCompileDefault(b *testing.B) {
	s := DefaultFor([]string{"CAP_CHOWN", "CAP_SYS_CHROOT", "CAP_KILL"})
	for b.Loop() {
		if _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}
