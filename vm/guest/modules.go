package guest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// AgentModules are the modules of a modular kernel (Debian's cloud kernel)
// that the agent needs: the virtio transports (mmio for microvm, the pci
// set for q35), the console/serial channel, vsock, virtio-fs, virtio-blk and
// virtio-net. Their dependencies are added by ModuleOrder.
var AgentModules = []string{
	"virtio_mmio",
	"virtio_pci",
	"virtio_console",
	"vsock",
	"vmw_vsock_virtio_transport",
	"fuse",
	"virtiofs",
	"virtio_blk",
	"failover",
	"net_failover",
	"virtio_net",
}

// ErrModuleMissing wraps errdefs.ErrNotFound for a module not in the tree.
var ErrModuleMissing = fmt.Errorf("kernel module: %w", errdefs.ErrNotFound)

// ModuleTree is a kernel's module directory (lib/modules/<release>) with
// each module's dependencies.
type ModuleTree struct {
	Dir  string
	Path map[string]string   // module name -> path relative to Dir
	Deps map[string][]string // module name -> names it depends on, in modules.dep order
}

// modName turns a file name into a module name (as the kernel does: "-"
// becomes "_", the .ko suffix goes).
func modName(file string) string {
	n := filepath.Base(file)
	for _, suf := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		n = strings.TrimSuffix(n, suf)
	}
	return strings.ReplaceAll(n, "-", "_")
}

// ReadModuleTree reads every module's .modinfo "depends=" field. Debian's
// kernel packages ship no modules.dep (depmod makes it at install time, and
// the host is not to be touched), and the depends= that modpost records in
// each module is the same dependency list depmod writes. WriteModulesDep
// writes it out in depmod's format.
func ReadModuleTree(dir string) (*ModuleTree, error) {
	t := &ModuleTree{Dir: dir, Path: map[string]string{}, Deps: map[string][]string{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		deps, name, err := modinfoDeps(p)
		if err != nil {
			return fmt.Errorf("module %s: %w", rel, err)
		}
		if name == "" {
			name = modName(p)
		}
		t.Path[name] = rel
		t.Deps[name] = deps
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(t.Path) == 0 {
		return nil, fmt.Errorf("%s: no .ko modules: %w", dir, ErrModuleMissing)
	}
	return t, nil
}

func modinfoDeps(path string) (deps []string, name string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, "", fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, "", err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		s := string(kv)
		switch {
		case strings.HasPrefix(s, "depends="):
			for _, d := range strings.Split(strings.TrimPrefix(s, "depends="), ",") {
				if d = strings.TrimSpace(d); d != "" {
					deps = append(deps, strings.ReplaceAll(d, "-", "_"))
				}
			}
		case strings.HasPrefix(s, "name="):
			name = strings.TrimPrefix(s, "name=")
		}
	}
	return deps, name, nil
}

// Order returns the named modules and everything they depend on, each once,
// every module after its dependencies (the order modprobe loads them in).
// Modules keep the order they are asked in where dependencies allow.
func (t *ModuleTree) Order(names []string) ([]string, error) {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, from string) error
	visit = func(n, from string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle at %s: %w", n, errdefs.ErrInvalidArgument)
		}
		if _, ok := t.Path[n]; !ok {
			if from != "" {
				return fmt.Errorf("%s (needed by %s) in %s: %w", n, from, t.Dir, ErrModuleMissing)
			}
			return fmt.Errorf("%s in %s: %w", n, t.Dir, ErrModuleMissing)
		}
		state[n] = 1
		for _, d := range t.Deps[n] {
			if err := visit(d, n); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(strings.ReplaceAll(n, "-", "_"), ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// closure returns all transitive dependencies of n (not n itself), in load
// order, as modules.dep lists them (depmod lists the deepest last).
func (t *ModuleTree) closure(n string) []string {
	order, err := t.Order([]string{n})
	if err != nil || len(order) == 0 {
		return nil
	}
	deps := order[:len(order)-1]
	rev := make([]string, len(deps))
	for i, d := range deps {
		rev[len(deps)-1-i] = t.Path[d]
	}
	return rev
}

// ModulesDep renders the tree in depmod's modules.dep format: one line per
// module, "path: dep dep ...", with all transitive dependencies, the one to
// load first listed last.
func (t *ModuleTree) ModulesDep() []byte {
	names := make([]string, 0, len(t.Path))
	for n := range t.Path {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return t.Path[names[i]] < t.Path[names[j]] })
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(t.Path[n] + ":")
		for _, d := range t.closure(n) {
			b.WriteString(" " + d)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
