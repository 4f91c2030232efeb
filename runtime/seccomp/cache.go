package seccomp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cacheFormat changes whenever Program or the compilation changes, so that
// old entries are never read.
const cacheFormat = "hull-seccomp-v2"

// Cache keeps compiled Programs on disk, keyed by a hash of the profile,
// the libseccomp version and the architecture. Compiling the default
// profile for its three architectures costs about 15 ms here, more than a
// whole crun start; with the cache it is paid once per host (per distinct
// profile) instead of once per container.
//
// Dir must be writable only by root (the runtime's state directory is):
// whoever can write there chooses the filters of later containers.
// Entries are written atomically (temporary file and rename) and are never
// changed, so concurrent runtimes can share the directory.
type Cache struct {
	Dir string
	// Compiler, when set, compiles the profiles missing from the cache
	// instead of this package's Compile: a program built without cgo
	// hands them to one linked with libseccomp (hull-runtime-helper).
	// CompilerID then names that compiler in the keys, in place of the
	// linked libseccomp's version: it must change whenever the compiler
	// (or its libseccomp) does.
	Compiler   func(*specs.LinuxSeccomp) (*Program, error)
	CompilerID string
}

// Key is the cache key of s: a hex SHA-256.
func (c *Cache) Key(s *specs.LinuxSeccomp) (string, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode seccomp profile: %w", err)
	}
	h := sha256.New()
	compiler := libVersionString()
	if c.CompilerID != "" {
		compiler = "compiler " + c.CompilerID
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", cacheFormat, runtime.GOARCH, compiler)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Compile returns the Program for s from the cache, or compiles it (which
// validates it) and stores it. A nil profile gives a nil Program. A cache
// that cannot be read or written only costs time: the profile is compiled.
func (c *Cache) Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, nil
	}
	// The static checks are cheap and give the usual errors even on a hit.
	if err := check(s); err != nil {
		return nil, err
	}
	key, err := c.Key(s)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.Dir, key+".json")
	if data, err := os.ReadFile(path); err == nil {
		var p Program
		if json.Unmarshal(data, &p) == nil {
			if _, err := p.Instructions(); err == nil {
				return &p, nil
			}
		}
	}
	compile := Compile
	if c.Compiler != nil {
		compile = c.Compiler
	}
	p, err := compile(s)
	if err != nil {
		return nil, err
	}
	c.store(path, p)
	return p, nil
}

func (c *Cache) store(path string, p *Program) {
	data, err := json.Marshal(p)
	if err != nil {
		return
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(c.Dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}
