package guest

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCloudKernelCached: the fetched cloud kernel is a cache hit, and its
// modules are listed with every dependency before the module needing it.
func TestCloudKernelCached(t *testing.T) {
	dir := CloudDir(DefaultDir())
	if _, err := ReadManifest(dir); err != nil {
		t.Skipf("cloud kernel not fetched (%v): run `make guest-cloud-kernel`", err)
	}
	start := time.Now()
	m, fetched, err := FetchCloudKernel(context.Background(), CloudOptions{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if fetched {
		t.Fatal("FetchCloudKernel fetched again although the pinned version is in place")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cache hit took %v", d)
	}
	if m.Kind != KindCloud || m.SourcePackage != CloudPackage || m.SourceVersion != CloudVersion {
		t.Errorf("manifest = %s %s %s, want cloud %s %s", m.Kind, m.SourcePackage, m.SourceVersion, CloudPackage, CloudVersion)
	}
	tree, err := ReadModuleTree(filepath.Join(dir, "root", "lib", "modules", m.Release))
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, mod := range m.Modules {
		pos[mod.Name] = i
	}
	for _, want := range AgentModules {
		if _, ok := pos[want]; !ok {
			t.Errorf("agent module %s not selected", want)
		}
	}
	for _, mod := range m.Modules {
		for _, d := range tree.Deps[mod.Name] {
			if p, ok := pos[d]; !ok || p > pos[mod.Name] {
				t.Errorf("%s needs %s, which is not loaded before it", mod.Name, d)
			}
		}
	}
}

func TestCloudKernelBadVersion(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("no apt-get on this host")
	}
	_, _, err := FetchCloudKernel(context.Background(), CloudOptions{OutDir: t.TempDir(), Version: "0.0-no-such-version"})
	if !errors.Is(err, ErrFetchFailed) || !strings.Contains(err.Error(), CloudPackage+"=0.0-no-such-version") {
		t.Fatalf("err = %v, want ErrFetchFailed naming the package and version", err)
	}
}
