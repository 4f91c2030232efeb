package imagebuild

import (
	"archive/tar"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClosureRunpathAndHost builds a program whose library sits beside it
// (RUNPATH $ORIGIN/../lib), stages both, and checks the closure finds that
// library through $ORIGIN, and libc and the loader on the host only when
// allowed (never by running the program or ldd).
func TestClosureRunpathAndHost(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc (build-essential) to make the test program")
	}
	src := t.TempDir()
	stage := t.TempDir()
	for _, d := range []string{"opt/app/bin", "opt/app/lib"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "lib.c"), []byte("int hull_answer(void) { return 42; }\n"), 0o644)
	os.WriteFile(filepath.Join(src, "app.c"), []byte("int hull_answer(void);\nint main(void) { return hull_answer() != 42; }\n"), 0o644)
	lib := filepath.Join(stage, "opt/app/lib/libhullt.so.1")
	app := filepath.Join(stage, "opt/app/bin/app")
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-Wl,-soname,libhullt.so.1", "-o", lib, filepath.Join(src, "lib.c")},
		{"-o", app, filepath.Join(src, "app.c"), lib, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"},
	} {
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	info, ok, err := readELF(app)
	if err != nil || !ok || len(info.runpath) != 1 || info.interp == "" {
		t.Fatalf("readELF(app) = %+v, %v, %v", info, ok, err)
	}
	if _, ok, _ := readELF(filepath.Join(src, "app.c")); ok {
		t.Fatal("a C file read as ELF")
	}

	for _, host := range []bool{false, true} {
		tr := newTree(stage)
		files, err := tr.addStaged("/opt/app/bin/app")
		if err != nil {
			t.Fatal(err)
		}
		c := newClosure(tr)
		if host {
			c.hostRoot = "/"
		}
		if err := c.add(files...); err != nil {
			t.Fatal(err)
		}
		if tr.entries["/opt/app/lib/libhullt.so.1"] == nil {
			t.Errorf("host=%v: $ORIGIN/../lib not followed: %v", host, keys(tr))
		}
		err = c.missingError()
		if !host {
			if !errors.Is(err, ErrMissingLibrary) || !strings.Contains(err.Error(), "libc.so.6 (needed by /opt/app/bin/app") ||
				!strings.Contains(err.Error(), info.interp) {
				t.Errorf("without host libraries: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{info.interp, "/lib/" + multiarch(info.machine, info.class) + "/libc.so.6"} {
			if e := tr.entries[p]; e == nil || e.typ != tar.TypeReg || e.origin != "host" {
				t.Errorf("%s: not taken from the host: %+v", p, e)
			}
		}
	}
}

func keys(t *tree) []string {
	var out []string
	for k := range t.entries {
		out = append(out, k)
	}
	return out
}
