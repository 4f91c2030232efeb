package vm

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartWithBinds: the server started for a share with binds sees them
// under the share (read-only where asked, submounts with Recursive), the
// host's mount table never holds them, and they vanish with the server.
func TestStartWithBinds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mount namespaces and bind mounts")
	}
	host := t.TempDir()
	share := filepath.Join(t.TempDir(), "share")
	dir, file := filepath.Join(host, "dir"), filepath.Join(host, "file")
	for _, d := range []string{dir, share, filepath.Join(share, "d"), filepath.Join(share, "ro")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "in"), []byte("dir-content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("file-content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := Share{Tag: "t", Source: share, Binds: []Bind{
		{Source: dir, Target: "d"},
		{Source: file, Target: "f"},
		{Source: dir, Target: "ro", ReadOnly: true},
	}}
	for _, b := range s.Binds {
		if err := b.validate(share); err != nil {
			t.Fatal(err)
		}
	}
	// The "server": reads the binds, writes through the rw one, tries the
	// ro one, then waits for stdin to close.
	script := `cat d/in; echo; cat f; echo; echo w > d/out && echo rw-ok; echo x > ro/x 2>/dev/null || echo ro-refused; read x; true`
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = share
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	if err := StartWithBinds(cmd, s, exited); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var got []string
	for len(got) < 4 && sc.Scan() {
		got = append(got, sc.Text())
	}
	if strings.Join(got, "|") != "dir-content|file-content|rw-ok|ro-refused" {
		t.Errorf("server saw %q", got)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "out")); string(data) != "w\n" {
		t.Errorf("write through the rw bind: host has %q", data)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	other, err := exec.Command("cat", "/proc/self/mountinfo").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), share) || strings.Contains(string(other), share) {
		t.Errorf("a bind is in the host's mount table:\n%s", mi)
	}
	if ents, _ := os.ReadDir(filepath.Join(share, "d")); len(ents) != 0 {
		t.Errorf("the host sees the bind's content under the share: %v", ents)
	}
	stdin.Close()
	if err := <-exited; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func TestBindValidate(t *testing.T) {
	share := t.TempDir()
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(share, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    Bind
		ok   bool
	}{
		{"dir on dir", Bind{Source: src, Target: "d"}, true},
		{"dir on file", Bind{Source: src, Target: "f"}, false},
		{"absolute target", Bind{Source: src, Target: "/d"}, false},
		{"escaping target", Bind{Source: src, Target: "../d"}, false},
		{"missing target", Bind{Source: src, Target: "nope"}, false},
		{"missing source", Bind{Source: filepath.Join(src, "nope"), Target: "d"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.b.validate(share); (err == nil) != tc.ok {
				t.Fatalf("validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
