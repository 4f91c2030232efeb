package container

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/hullproject/hull/runtime/seccomp"
)

// A hull-runtime built without cgo (make build's: no glibc start-up on
// every call) has neither the nsenter constructor nor libseccomp. What
// needs them runs in HelperBinary, installed beside it: the inits that
// join namespaces (initExe) and the helper commands of package seccomp.

// runHelper runs HelperBinary (from beside this binary) with one helper
// command, stdin as its input, and decodes its output into out.
func runHelper(command string, stdin []byte, out any) error {
	h, ok := besideSelf(HelperBinary)
	if !ok {
		return fmt.Errorf("this hull-runtime is built without libseccomp and %s is not installed beside it", HelperBinary)
	}
	cmd := exec.Command(h, command)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%s", msg)
		}
		return fmt.Errorf("%s %s: %w", h, command, err)
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: bad output: %w", h, command, err)
	}
	return nil
}

// seccompCache is the cache of compiled profiles (see seccomp.Cache):
// compiling in this process when it holds libseccomp, else in
// HelperBinary, whose identity (inode, size, change time) then keys the
// entries instead of the libseccomp version.
func seccompCache() (*seccomp.Cache, error) {
	c := &seccomp.Cache{Dir: SeccompCacheDir}
	if seccomp.Linked {
		return c, nil
	}
	h, ok := besideSelf(HelperBinary)
	if !ok {
		return nil, fmt.Errorf("%w: this hull-runtime is built without libseccomp and %s is not installed beside it", seccomp.ErrUnsupported, HelperBinary)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(h, &st); err != nil {
		return nil, err
	}
	c.CompilerID = fmt.Sprintf("%s dev %d ino %d size %d ctime %d.%09d", HelperBinary, st.Dev, st.Ino, st.Size, st.Ctim.Sec, st.Ctim.Nsec)
	c.Compiler = func(s *specs.LinuxSeccomp) (*seccomp.Program, error) {
		in, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		var p seccomp.Program
		if err := runHelper(seccomp.HelperCompile, in, &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	return c, nil
}

// SeccompFeatures is the seccomp part of the features document: this
// binary's libseccomp's, else HelperBinary's, else seccomp disabled.
func SeccompFeatures() *features.Seccomp {
	if seccomp.Linked {
		return seccomp.Features()
	}
	var f features.Seccomp
	if err := runHelper(seccomp.HelperFeatures, nil, &f); err != nil {
		return seccomp.Features()
	}
	return &f
}
