package container

import (
	"os"
	"path/filepath"
	"testing"
)

// The init helper is used only when neither it nor its directory can be
// changed by anyone but the owner of the runtime binary.
func TestUsableHelper(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chowns files")
	}
	tests := []struct {
		name    string
		mode    os.FileMode
		dirMode os.FileMode
		uid     int
		missing bool
		want    bool
	}{
		{"owner's, 0755", 0o755, 0o755, 0, false, true},
		{"group-writable", 0o775, 0o755, 0, false, false},
		{"world-writable", 0o757, 0o755, 0, false, false},
		{"not executable", 0o644, 0o755, 0, false, false},
		{"another owner", 0o755, 0o755, 65534, false, false},
		{"directory writable by others", 0o755, 0o777, 0, false, false},
		{"missing", 0o755, 0o755, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bin")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			self := filepath.Join(dir, "hull-runtime")
			helper := filepath.Join(dir, InitBinary)
			if err := os.WriteFile(self, []byte("x"), 0o755); err != nil {
				t.Fatal(err)
			}
			if !tt.missing {
				if err := os.WriteFile(helper, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(helper, tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(helper, tt.uid, 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			if got := usableHelper(self, helper); got != tt.want {
				t.Errorf("usableHelper = %v, want %v", got, tt.want)
			}
		})
	}
}
