package imagebuild

import (
	"archive/tar"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// elfInfo is what the dynamic loader reads from an ELF file.
type elfInfo struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	rpath   []string // DT_RPATH (used only without DT_RUNPATH)
	runpath []string
}

// readELF parses file; ok is false for anything that is not ELF.
func readELF(file string) (info *elfInfo, ok bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, false, nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", file, err)
	}
	defer ef.Close()
	info = &elfInfo{class: ef.Class, machine: ef.Machine}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, false, fmt.Errorf("%s: PT_INTERP: %w", file, err)
			}
			info.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if ef.Section(".dynamic") == nil && dynamicProg(ef) == nil {
		return info, true, nil // static
	}
	if info.needed, err = ef.DynString(elf.DT_NEEDED); err != nil {
		return nil, false, fmt.Errorf("%s: DT_NEEDED: %w", file, err)
	}
	rp, _ := ef.DynString(elf.DT_RPATH)
	rn, _ := ef.DynString(elf.DT_RUNPATH)
	for _, s := range rp {
		info.rpath = append(info.rpath, filepath.SplitList(s)...)
	}
	for _, s := range rn {
		info.runpath = append(info.runpath, filepath.SplitList(s)...)
	}
	return info, true, nil
}

func dynamicProg(ef *elf.File) *elf.Prog {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return p
		}
	}
	return nil
}

// multiarch is Debian's multiarch triplet of an ELF machine.
func multiarch(m elf.Machine, c elf.Class) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64-linux-gnu"
	case elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	case elf.EM_386:
		return "i386-linux-gnu"
	case elf.EM_ARM:
		return "arm-linux-gnueabihf"
	case elf.EM_PPC64:
		return "powerpc64le-linux-gnu"
	case elf.EM_S390:
		if c == elf.ELFCLASS64 {
			return "s390x-linux-gnu"
		}
	case elf.EM_RISCV:
		return "riscv64-linux-gnu"
	}
	return ""
}

// defaultDirs are the directories Debian's glibc loader searches without
// an ld.so.cache (its configured slibdir and libdir, then the classic ones).
func defaultDirs(info *elfInfo) []string {
	var dirs []string
	if t := multiarch(info.machine, info.class); t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if info.class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// need is one DT_NEEDED (or interpreter) not found yet.
type need struct {
	name string // soname, or the interpreter's absolute path
	by   string // image path of the file that needs it
	dirs []string
	elf  *elfInfo
}

// closure walks ELF dependencies through the staging tree.
type closure struct {
	t       *tree
	scanned map[string]bool // image paths already read
	pending []need
	// hostRoot, when set, is searched after the staging tree (HostLibraries).
	hostRoot string
	fromHost []string
	// first is the first ELF file read: the class and machine of
	// libraries named by the recipe.
	first *elfInfo
}

func newClosure(t *tree) *closure { return &closure{t: t, scanned: map[string]bool{}} }

// add scans the regular files at the image paths (those that are ELF).
func (c *closure) add(paths ...string) error {
	for _, p := range paths {
		if c.scanned[p] {
			continue
		}
		e := c.t.entries[p]
		if e == nil || e.typ != tar.TypeReg || e.src == "" {
			continue
		}
		c.scanned[p] = true
		info, ok, err := readELF(e.src)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if c.first == nil {
			c.first = info
		}
		if info.interp != "" {
			c.pending = append(c.pending, need{name: info.interp, by: p, elf: info})
		}
		var dirs []string
		origin := path.Dir(p)
		expand := func(list []string) {
			for _, d := range list {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
				if path.IsAbs(d) {
					dirs = append(dirs, path.Clean(d))
				}
			}
		}
		if len(info.runpath) == 0 {
			expand(info.rpath)
		}
		expand(info.runpath)
		dirs = append(dirs, defaultDirs(info)...)
		for _, n := range info.needed {
			c.pending = append(c.pending, need{name: n, by: p, dirs: dirs, elf: info})
		}
	}
	return c.resolve()
}

// library adds a library by soname (one a program loads with dlopen,
// which no DT_NEEDED shows), looked for where the loader would look for
// the first ELF file's libraries.
func (c *closure) library(soname string) error {
	like := c.first
	if like == nil {
		like = &elfInfo{class: elf.ELFCLASS64, machine: elf.EM_X86_64}
		if runtime.GOARCH == "arm64" {
			like.machine = elf.EM_AARCH64
		}
	}
	c.pending = append(c.pending, need{name: soname, by: "the recipe's libraries", dirs: defaultDirs(like), elf: like})
	return c.resolve()
}

// resolve settles what it can of the pending needs from the staging tree
// (and the host, if allowed), scanning what it finds, until nothing more
// resolves.
func (c *closure) resolve() error {
	for progress := true; progress; {
		progress = false
		var still []need
		todo := c.pending
		c.pending = nil
		for _, n := range todo {
			got, err := c.find(n)
			if err != nil {
				return err
			}
			if got == "" {
				still = append(still, n)
				continue
			}
			progress = true
			if err := c.add(got); err != nil {
				return err
			}
		}
		c.pending = append(c.pending, still...)
	}
	return nil
}

// find looks for n in the staging tree, then on the host; it adds what it
// finds to the tree and returns its image path ("" if not found).
func (c *closure) find(n need) (string, error) {
	var cands []string
	if path.IsAbs(n.name) {
		cands = []string{n.name}
	} else if strings.Contains(n.name, "/") {
		cands = []string{path.Join(path.Dir(n.by), n.name)}
	} else {
		for _, d := range n.dirs {
			cands = append(cands, path.Join(d, n.name))
		}
	}
	for _, cand := range cands {
		final, _, err := resolve(c.t.stage, cand)
		if err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join(c.t.stage, final))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if !c.matches(filepath.Join(c.t.stage, final), n.elf) {
			continue
		}
		if _, err := c.t.addStaged(cand); err != nil {
			return "", err
		}
		return final, nil
	}
	if c.hostRoot == "" {
		return "", nil
	}
	for _, cand := range cands {
		hp := filepath.Join(c.hostRoot, cand)
		real, err := filepath.EvalSymlinks(hp)
		if err != nil {
			continue
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() || !c.matches(real, n.elf) {
			continue
		}
		// The image gets the host's file, dereferenced, where the loader
		// will look for it.
		c.t.put(cand, &entry{typ: tar.TypeReg, mode: int64(fi.Mode().Perm()), src: real, origin: "host"})
		c.fromHost = append(c.fromHost, cand)
		return cand, nil
	}
	return "", nil
}

// matches: the loader skips libraries of another class or machine.
func (c *closure) matches(file string, want *elfInfo) bool {
	info, ok, err := readELF(file)
	if err != nil || !ok {
		return false
	}
	return want == nil || (info.class == want.class && info.machine == want.machine)
}

// missingError describes the needs no one met.
func (c *closure) missingError() error {
	if len(c.pending) == 0 {
		return nil
	}
	by := map[string][]string{}
	for _, n := range c.pending {
		by[n.name] = append(by[n.name], n.by)
	}
	var parts []string
	for name, users := range by {
		sort.Strings(users)
		parts = append(parts, fmt.Sprintf("%s (needed by %s)", name, strings.Join(users, ", ")))
	}
	sort.Strings(parts)
	return fmt.Errorf("%s: add the package that ships it to the recipe, or allow host_libraries: %w", strings.Join(parts, "; "), ErrMissingLibrary)
}
