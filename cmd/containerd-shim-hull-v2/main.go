// Command containerd-shim-hull-v2 is Hull's containerd runtime-v2 shim
// (runtime type io.containerd.hull.v2). All of it lives in package shim.
package main

import (
	"os"

	"github.com/hullproject/hull/shim"
	"github.com/hullproject/hull/version"
)

func main() {
	os.Exit(shim.Main("containerd-shim-hull-v2", version.Version, os.Args[1:]))
}
