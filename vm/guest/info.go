package guest

// KernelInfo is what `hull info` shows about one guest kernel.
type KernelInfo struct {
	Kind          string `json:"kind"`
	Dir           string `json:"dir"`
	Built         bool   `json:"built"`
	Release       string `json:"release,omitempty"`
	SourcePackage string `json:"source_package,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	ConfigSHA256  string `json:"config_sha256,omitempty"`
	// Patches are the source patches the minimal kernel was built with.
	Patches     []string `json:"patches,omitempty"`
	KernelSize  int64    `json:"kernel_size,omitempty"`
	VmlinuxSize int64    `json:"vmlinux_size,omitempty"`
	Modules     int      `json:"modules,omitempty"`
	// Problem says why the kernel is not usable ("not built: run make
	// guest-kernel", a damaged file).
	Problem string `json:"problem,omitempty"`
}

// Info describes the minimal and the cloud kernel under dir (DefaultDir()
// when empty), for `hull info`. It never fails: a missing or damaged kernel
// is described in Problem.
func Info(dir string) []KernelInfo {
	if dir == "" {
		dir = DefaultDir()
	}
	out := []KernelInfo{describe(KindMinimal, dir, "make guest-kernel"), describe(KindCloud, CloudDir(dir), "make guest-cloud-kernel")}
	return out
}

func describe(kind, dir, target string) KernelInfo {
	ki := KernelInfo{Kind: kind, Dir: dir}
	m, err := ReadManifest(dir)
	if err != nil {
		ki.Problem = err.Error()
		if IsNotBuilt(err) {
			ki.Problem = "not built: run `" + target + "`"
		}
		return ki
	}
	ki.Release, ki.SourcePackage, ki.SourceVersion = m.Release, m.SourcePackage, m.SourceVersion
	ki.ConfigSHA256, ki.KernelSize, ki.Modules = m.ConfigSHA256, m.BzImage.Size, len(m.Modules)
	ki.Patches = m.Patches
	if m.Vmlinux != nil {
		ki.VmlinuxSize = m.Vmlinux.Size
	}
	if err := m.Check(); err != nil {
		ki.Problem = err.Error()
		return ki
	}
	ki.Built = true
	return ki
}
