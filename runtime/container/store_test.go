package container

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSaveReplacesState: every save leaves one state.json holding the
// last record (the second and later ones swap the file in with
// RENAME_EXCHANGE), no temporary file, and remove leaves nothing.
func TestSaveReplacesState(t *testing.T) {
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		root := filepath.Join(dir, "hull-store-test-"+t.Name())
		t.Cleanup(func() { os.RemoveAll(root) })
		h, err := newHandle(root, "c1")
		if err != nil {
			t.Fatal(err)
		}
		for pid := 1; pid <= 3; pid++ {
			h.Record.Pid = pid
			if err := h.Save(); err != nil {
				t.Fatalf("%s: save %d: %v", dir, pid, err)
			}
			ents, err := os.ReadDir(h.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 || ents[0].Name() != stateFile {
				t.Fatalf("%s: after save %d the state dir holds %v, want only %s", dir, pid, ents, stateFile)
			}
		}
		h.Close()
		l, err := Load(root, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if l.Record.Pid != 3 {
			t.Errorf("%s: loaded pid %d, want the last saved 3", dir, l.Record.Pid)
		}
		if err := l.remove(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "c1")); !os.IsNotExist(err) {
			t.Errorf("%s: state dir left after remove: %v", dir, err)
		}
	}
}
