// Command hull-runtime-helper holds the parts of hull-runtime that need C,
// for a hull-runtime built without cgo (make build's, which spares every
// runtime call glibc's start-up). hull-runtime finds it beside itself and
// runs it as:
//
//   - `hull-runtime-helper init`: the container init of a container (or
//     an exec'd process) that joins namespaces by path, which the C
//     constructor of runtime/nsenter enters before the Go runtime starts;
//   - `hull-runtime-helper seccomp-compile`: a linux.seccomp profile
//     (JSON, stdin) compiled to BPF with libseccomp (JSON, stdout), on a
//     miss of hull-runtime's cache of compiled profiles;
//   - `hull-runtime-helper seccomp-features`: the seccomp part of
//     `hull-runtime features`.
//
// It is built static with cgo (libseccomp-dev) and is not meant to be run
// by hand.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hullproject/hull/runtime/initproc"
	_ "github.com/hullproject/hull/runtime/nsenter" // joins namespaces before the Go runtime starts
	"github.com/hullproject/hull/runtime/seccomp"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		initproc.Main()
	}
	debug.SetGCPercent(-1)
	if code, ok := seccomp.HelperMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	fmt.Fprintf(os.Stderr, "%s: a helper of hull-runtime, run only by it (init, seccomp-compile, seccomp-features)\n", "hull-runtime-helper")
	os.Exit(2)
}
