// Package initramfs builds the initramfs that Hull boots its guests with: a
// newc cpio archive (optionally gzip-compressed) holding /init (hull-agent,
// or any static binary), /dev/console, a few mount points, extra files, and
// the kernel modules a modular kernel needs, in load order.
//
// The cpio writer is written here by hand rather than taken from a library:
// the format is a 110-byte ASCII header per entry, the one Go library for it
// (github.com/cavaliergopher/cpio) is not among the modules this project's
// proxy serves, and an initramfs needs device nodes (/dev/console, char 5:1)
// whose rdev numbers must be written exactly. A Reader is included so the
// tests (and tools) can read an archive back.
package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// Where the archive puts kernel modules, and the file listing them in the
// order they must be loaded (one path per line, relative to the root,
// dependencies first). The agent reads ModulesOrderFile and loads each with
// finit_module(2).
const (
	ModulesDir       = "lib/modules"
	ModulesOrderFile = "lib/modules/load.order"
)

// Compression of the archive.
type Compression int

const (
	// None writes a plain cpio archive (no decompression at boot).
	None Compression = iota
	// Gzip compresses the archive (the guest kernel needs CONFIG_RD_GZIP).
	Gzip
)

// File is one extra file in the archive.
type File struct {
	// Path inside the guest, absolute ("/etc/hosts").
	Path string
	// Source is a host file to copy; Data is used when Source is empty.
	Source string
	Data   []byte
	// Mode holds the permission bits; zero means 0644 (0755 for Source files
	// that are executable on the host).
	Mode fs.FileMode
}

// Module is one kernel module. Modules are loaded in the order of
// Spec.Modules, so list dependencies first.
type Module struct {
	// Name of the module ("virtio_mmio"); the file goes to
	// /lib/modules/<Name>.ko.
	Name string
	// Source is the host path of the .ko file (uncompressed).
	Source string
}

// Spec describes an initramfs.
type Spec struct {
	// Init is the host path of a static binary that becomes /init (PID 1).
	Init        string
	Files       []File
	Modules     []Module
	Compression Compression
}

// ErrInvalidSpec wraps errdefs.ErrInvalidArgument for a bad Spec.
var ErrInvalidSpec = fmt.Errorf("initramfs: invalid spec: %w", errdefs.ErrInvalidArgument)

// baseDirs are created in every archive: mount points the agent uses.
var baseDirs = []string{"dev", "proc", "sys", "run", "tmp", "etc", "lib", "lib/modules"}

// Build writes the initramfs described by spec to w.
func Build(w io.Writer, spec Spec) error {
	if spec.Init == "" {
		return fmt.Errorf("%w: no init binary", ErrInvalidSpec)
	}
	st, err := os.Stat(spec.Init)
	if err != nil {
		return fmt.Errorf("%w: init binary: %w", ErrInvalidSpec, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: init binary %s is not a regular file", ErrInvalidSpec, spec.Init)
	}

	out := w
	var gz *gzip.Writer
	switch spec.Compression {
	case None:
	case Gzip:
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = gz
	default:
		return fmt.Errorf("%w: unknown compression %d", ErrInvalidSpec, spec.Compression)
	}
	cw := NewWriter(out)

	dirs := map[string]bool{}
	mkdirAll := func(dir string) error {
		var parts []string
		for d := dir; d != "." && d != "/" && d != ""; d = path.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if dirs[parts[i]] {
				continue
			}
			dirs[parts[i]] = true
			if err := cw.WriteHeader(&Header{Name: parts[i], Mode: fs.ModeDir | 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range baseDirs {
		if err := mkdirAll(d); err != nil {
			return err
		}
	}
	// /dev/console must exist before devtmpfs is mounted, or init has no
	// stdin/stdout/stderr and its output is lost.
	if err := cw.WriteHeader(&Header{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1}); err != nil {
		return err
	}

	seen := map[string]bool{}
	addFile := func(name, source string, data []byte, mode fs.FileMode) error {
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" || seen[name] || dirs[name] {
			return fmt.Errorf("%w: duplicate or empty path %q", ErrInvalidSpec, "/"+name)
		}
		seen[name] = true
		if err := mkdirAll(path.Dir(name)); err != nil {
			return err
		}
		var r io.Reader = bytes.NewReader(data)
		size := int64(len(data))
		if source != "" {
			f, err := os.Open(source)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return fmt.Errorf("%w: %s is not a regular file", ErrInvalidSpec, source)
			}
			if mode == 0 {
				mode = 0o644
				if st.Mode()&0o111 != 0 {
					mode = 0o755
				}
			}
			r, size = f, st.Size()
		}
		if mode == 0 {
			mode = 0o644
		}
		if err := cw.WriteHeader(&Header{Name: name, Mode: mode.Perm(), Size: size}); err != nil {
			return err
		}
		n, err := io.Copy(cw, r)
		if err != nil {
			return fmt.Errorf("initramfs: copying %s: %w", name, err)
		}
		if n != size {
			return fmt.Errorf("initramfs: %s changed size while copying", source)
		}
		return nil
	}

	if err := addFile("init", spec.Init, nil, 0o755); err != nil {
		return err
	}
	files := append([]File(nil), spec.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("%w: file path %q is not absolute", ErrInvalidSpec, f.Path)
		}
		if err := addFile(f.Path, f.Source, f.Data, f.Mode); err != nil {
			return err
		}
	}
	if len(spec.Modules) > 0 {
		var order strings.Builder
		for _, m := range spec.Modules {
			if m.Name == "" || strings.ContainsAny(m.Name, "/\n") {
				return fmt.Errorf("%w: module name %q", ErrInvalidSpec, m.Name)
			}
			p := ModulesDir + "/" + m.Name + ".ko"
			if err := addFile(p, m.Source, nil, 0o644); err != nil {
				return fmt.Errorf("module %s: %w", m.Name, err)
			}
			order.WriteString("/" + p + "\n")
		}
		if err := addFile(ModulesOrderFile, "", []byte(order.String()), 0o644); err != nil {
			return err
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if gz != nil {
		return gz.Close()
	}
	return nil
}

// WriteFile builds the initramfs into the file at path (written atomically).
func WriteFile(name string, spec Spec) (err error) {
	tmp, err := os.CreateTemp(path.Dir(name), ".initramfs-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Build(tmp, spec); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// Open returns a Reader over an archive in r, undoing gzip compression when
// the data starts with the gzip magic.
func Open(r io.Reader) (*Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFormat, err)
		}
		return NewReader(zr), nil
	}
	return NewReader(br), nil
}
