package initramfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

type entry struct {
	h    Header
	data []byte
}

func readAll(t *testing.T, archive []byte) map[string]entry {
	t.Helper()
	r, err := Open(bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	out := map[string]entry{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		if _, dup := out[h.Name]; dup {
			t.Fatalf("entry %s twice", h.Name)
		}
		out[h.Name] = entry{*h, data}
	}
}

func writeFile(t *testing.T, dir, name string, data []byte, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildReadBack(t *testing.T) {
	dir := t.TempDir()
	initBin := writeFile(t, dir, "init", []byte("\x7fELF fake init"), 0o755)
	modA := writeFile(t, dir, "a.ko", []byte("module a"), 0o644)
	modB := writeFile(t, dir, "b.ko", bytes.Repeat([]byte("b"), 4097), 0o644)
	hosts := writeFile(t, dir, "hosts", []byte("127.0.0.1 localhost\n"), 0o600)

	for _, tc := range []struct {
		name string
		comp Compression
		gzip bool
	}{
		{"plain", None, false},
		{"gzip", Gzip, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			spec := Spec{
				Init: initBin,
				Files: []File{
					{Path: "/etc/hosts", Source: hosts},
					{Path: "/etc/hull/agent.toml", Data: []byte("x = 1\n"), Mode: 0o600},
				},
				Modules:     []Module{{Name: "a", Source: modA}, {Name: "b", Source: modB}},
				Compression: tc.comp,
			}
			if err := Build(&buf, spec); err != nil {
				t.Fatalf("Build: %v", err)
			}
			if got := buf.Len() > 2 && buf.Bytes()[0] == 0x1f && buf.Bytes()[1] == 0x8b; got != tc.gzip {
				t.Fatalf("gzip magic = %v, want %v", got, tc.gzip)
			}
			ents := readAll(t, buf.Bytes())

			con, ok := ents["dev/console"]
			if !ok {
				t.Fatal("no dev/console")
			}
			if con.h.Mode&fs.ModeCharDevice == 0 || con.h.Major != 5 || con.h.Minor != 1 {
				t.Errorf("dev/console = mode %v %d:%d, want char 5:1", con.h.Mode, con.h.Major, con.h.Minor)
			}
			checks := []struct {
				name string
				data string
				perm fs.FileMode
			}{
				{"init", "\x7fELF fake init", 0o755},
				{"etc/hosts", "127.0.0.1 localhost\n", 0o644},
				{"etc/hull/agent.toml", "x = 1\n", 0o600},
				{"lib/modules/a.ko", "module a", 0o644},
				{"lib/modules/b.ko", strings.Repeat("b", 4097), 0o644},
				{ModulesOrderFile, "/lib/modules/a.ko\n/lib/modules/b.ko\n", 0o644},
			}
			for _, c := range checks {
				e, ok := ents[c.name]
				if !ok {
					t.Errorf("missing %s", c.name)
					continue
				}
				if string(e.data) != c.data {
					t.Errorf("%s = %q, want %q", c.name, e.data, c.data)
				}
				if !e.h.Mode.IsRegular() || e.h.Mode.Perm() != c.perm {
					t.Errorf("%s mode = %v, want regular %v", c.name, e.h.Mode, c.perm)
				}
			}
			for _, d := range []string{"dev", "proc", "sys", "etc", "etc/hull", "lib/modules"} {
				if e, ok := ents[d]; !ok || !e.h.Mode.IsDir() {
					t.Errorf("directory %s missing", d)
				}
			}
		})
	}
}

// TestCpioToolReadsArchive cross-checks the writer with GNU cpio.
func TestCpioToolReadsArchive(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio(1) not installed (Debian package cpio; make deps installs it)")
	}
	dir := t.TempDir()
	initBin := writeFile(t, dir, "init", []byte("#!/bin/true\n"), 0o755)
	var buf bytes.Buffer
	if err := Build(&buf, Spec{Init: initBin, Files: []File{{Path: "/a/b/c", Data: []byte("odd-length")}}}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	var names []string
	var console string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		names = append(names, f[len(f)-1])
		if f[len(f)-1] == "dev/console" {
			console = l
		}
	}
	sort.Strings(names)
	want := []string{"a", "a/b", "a/b/c", "dev", "dev/console", "etc", "init", "lib", "lib/modules", "proc", "run", "sys", "tmp"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("cpio -t lists %v, want %v", names, want)
	}
	if !strings.HasPrefix(console, "crw-------") || !strings.Contains(console, "5,   1") {
		t.Errorf("cpio -tv shows dev/console as %q, want crw------- 5, 1", console)
	}
}

func TestBuildBadInput(t *testing.T) {
	dir := t.TempDir()
	initBin := writeFile(t, dir, "init", []byte("x"), 0o755)
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no init", Spec{}, "no init binary"},
		{"missing init", Spec{Init: filepath.Join(dir, "nope")}, "nope"},
		{"init is a dir", Spec{Init: dir}, "not a regular file"},
		{"relative file", Spec{Init: initBin, Files: []File{{Path: "etc/x"}}}, "not absolute"},
		{"duplicate", Spec{Init: initBin, Files: []File{{Path: "/init"}}}, "duplicate"},
		{"missing module", Spec{Init: initBin, Modules: []Module{{Name: "m", Source: filepath.Join(dir, "m.ko")}}}, "m.ko"},
		{"bad module name", Spec{Init: initBin, Modules: []Module{{Name: "a/b", Source: initBin}}}, "module name"},
		{"bad compression", Spec{Init: initBin, Compression: 7}, "compression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Build(io.Discard, tc.spec)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalidArgument naming %q", err, tc.want)
			}
		})
	}
}

func TestReaderRejectsGarbage(t *testing.T) {
	r, err := Open(strings.NewReader("definitely not cpio"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrFormat) {
		t.Errorf("Next = %v, want ErrFormat", err)
	}
}

func TestWriterSymlinkAndSizeCheck(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(&Header{Name: "bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&Header{Name: "f", Mode: 0o644, Size: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abcd")); err == nil {
		t.Error("writing past the entry size succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close with a short entry succeeded")
	}
	r := NewReader(bytes.NewReader(buf.Bytes()))
	h, err := r.Next()
	if err != nil || h.Linkname != "busybox" || h.Mode&fs.ModeSymlink == 0 {
		t.Errorf("symlink read back as %+v, %v", h, err)
	}
}
