package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/containerd/errdefs"
)

// InitrdManifest describes an initramfs built by `mkguest initramfs`; it is
// written beside the archive as <archive>.json and read back for `hull
// info` (which agent build a runtime boots).
type InitrdManifest struct {
	// Init is the file that became /init (hull-agent or the test init).
	Init       string `json:"init"`
	InitSize   int64  `json:"init_size"`
	InitSHA256 string `json:"init_sha256"`
	// HullVersion is the Hull source version the init was built from
	// (`git describe`, as the Makefile's VERSION), when given.
	HullVersion string `json:"hull_version,omitempty"`
	// Size and SHA256 are the archive's.
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	Compression string    `json:"compression"`
	Modules     int       `json:"modules,omitempty"`
	BuiltAt     time.Time `json:"built_at"`
}

// InitrdManifestPath is where the manifest of the initramfs at path lives.
func InitrdManifestPath(path string) string { return path + ".json" }

// WriteInitrdManifest records the initramfs at path, built around init.
func WriteInitrdManifest(path, init, hullVersion, compression string, modules int) (*InitrdManifest, error) {
	a, err := fileArtifact("", path)
	if err != nil {
		return nil, err
	}
	i, err := fileArtifact("", init)
	if err != nil {
		return nil, err
	}
	m := &InitrdManifest{Init: init, InitSize: i.Size, InitSHA256: i.SHA256, HullVersion: hullVersion,
		Size: a.Size, SHA256: a.SHA256, Compression: compression, Modules: modules, BuiltAt: time.Now().UTC()}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	p := InitrdManifestPath(path)
	if err := os.WriteFile(p+".tmp", append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, os.Rename(p+".tmp", p)
}

// ReadInitrdManifest reads the manifest of the initramfs at path. A
// missing manifest wraps errdefs.ErrNotFound; one that no longer matches
// the archive's size wraps errdefs.ErrDataLoss.
func ReadInitrdManifest(path string) (*InitrdManifest, error) {
	p := InitrdManifestPath(path)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: initramfs manifest: %w", p, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var m InitrdManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", p, errdefs.ErrDataLoss, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() != m.Size {
		return nil, fmt.Errorf("%s: size %d, manifest says %d (rebuilt without it?): %w", path, st.Size(), m.Size, errdefs.ErrDataLoss)
	}
	return &m, nil
}
