// Command gen compiles the daemon's default seccomp profile (oci.DefaultSpec's)
// into the seccomp cache entries that package seccompcache embeds, replacing
// the old ones: `make agent-seccomp`. Built with cgo against the same
// libseccomp the static hull-agent links.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/runtime/seccomp"
)

func main() {
	out := flag.String("out", "agent/seccompcache", "directory of the entries")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "seccompcache gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	old, err := filepath.Glob(filepath.Join(out, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	profile := oci.DefaultSpec("default", "x").Linux.Seccomp
	c := &seccomp.Cache{Dir: out}
	if _, err := c.Compile(profile); err != nil {
		return err
	}
	key, err := c.Key(profile)
	if err != nil {
		return err
	}
	path := filepath.Join(out, key+".json")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("the cache did not store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
