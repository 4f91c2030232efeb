// Command hull-runtime is Hull's OCI runtime, a drop-in for runc. See
// package runtime/cli for the commands and runtime/initproc for the
// container init it re-executes itself as.
package main

import (
	"os"
	"runtime/debug"

	"github.com/hullproject/hull/runtime/cli"
	"github.com/hullproject/hull/runtime/initproc"
	_ "github.com/hullproject/hull/runtime/nsenter" // joins namespaces before the Go runtime starts
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
