// Command hull-runtime is Hull's OCI runtime, a drop-in for runc. See
// package runtime/cli for the commands and runtime/initproc for the
// container init it re-executes itself as.
package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/hullproject/hull/runtime/cli"
	"github.com/hullproject/hull/runtime/initproc"
	_ "github.com/hullproject/hull/runtime/nsenter" // joins namespaces before the Go runtime starts
)

func main() {
	// The container init is checked first, before any flag parsing.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		initproc.Main()
	}
	// A CLI call lives for milliseconds: no garbage collection, and one
	// P: with two, every goroutine wakeup (sync socket, wait4, signals)
	// also wakes a spinning thread, context switches a short-lived
	// process pays for (1.1 ms of CPU per `run` measured).
	debug.SetGCPercent(-1)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(cli.Main(os.Args[1:]))
}
