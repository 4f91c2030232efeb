// Package seccompcache holds the daemon's default seccomp profile compiled
// ahead of time, as entries of the runtime's seccomp cache
// (runtime/seccomp.Cache), for hull-agent to install in the guest at boot.
//
// Compiling the profile with libseccomp is the costliest step of a first
// container create in a fresh guest under TCG (every guest is fresh: the
// cache lives on its tmpfs). The entries are keyed, as the cache keys
// them, by the profile, the architecture and the libseccomp version, so an
// entry that does not match (another profile, another libseccomp) is never
// used: the runtime compiles as before. Regenerate with
// `make agent-seccomp` when the default profile or libseccomp changes
// (TestEmbeddedMatchesCompile says when).
package seccompcache

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed *.json
var entries embed.FS

// Install writes the embedded entries into the cache directory dir
// (created 0700: the runtime trusts what it finds there) and returns how
// many it wrote.
func Install(dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("seccomp cache: %w", err)
	}
	names, err := fs.Glob(entries, "*.json")
	if err != nil {
		return 0, err
	}
	for i, n := range names {
		b, err := entries.ReadFile(n)
		if err != nil {
			return i, err
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return i, fmt.Errorf("seccomp cache: %w", err)
		}
	}
	return len(names), nil
}

// Names lists the embedded entries' file names (<cache key>.json).
func Names() []string {
	names, _ := fs.Glob(entries, "*.json")
	return names
}
