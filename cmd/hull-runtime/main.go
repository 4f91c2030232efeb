// Command hull-runtime is Hull's OCI runtime, a drop-in for runc. See
// package runtime/cli for the commands and runtime/initproc for the
// container init it re-executes itself as.
//
// make build links it without cgo (CGO_ENABLED=0): a static pure Go
// binary starts ~0.7 ms sooner than one on static glibc, whose start-up
// cpuid probing traps to the hypervisor under virtualization, and every
// runtime call pays that. What needs C then runs in hull-runtime-helper,
// installed beside it (see runtime/container: initExe, seccompCache): the
// inits that join namespaces by path (runtime/nsenter) and libseccomp. A
// cgo build (nsenter_cgo.go) holds both itself and needs no helper.
package main

import (
	"os"
	"runtime/debug"

	"github.com/hullproject/hull/runtime/cli"
	"github.com/hullproject/hull/runtime/initproc"
	"github.com/hullproject/hull/runtime/timerslack"
)

func main() {
	// The container init is checked first, before any flag parsing.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		initproc.Main()
	}
	// A CLI call lives for milliseconds: no garbage collection, and a
	// coarse timer slack (timerslack.go) that its children do not get.
	debug.SetGCPercent(-1)
	timerslack.Raised(slackOriginal())
	os.Exit(cli.Main(os.Args[1:]))
}
