// Command hull-runtime-init is the container init that hull-runtime starts
// for a container that joins no existing namespace: runtime/initproc in a
// pure Go binary, without cgo, libc or the CLI's packages, so that it
// starts in about half the time hull-runtime does. It is found beside
// hull-runtime and run only by it (see container.initExe); without it,
// hull-runtime runs its own `init`.
package main

import (
	"github.com/hullproject/hull/runtime/initproc"
)

// The init runs from this package's init function, on the thread the
// process started with: see initproc.MainInInit.
func init() {
	initproc.MainInInit()
}

func main() {}
