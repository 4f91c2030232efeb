// Package version holds the build's version, set by the Makefile's -ldflags.
package version

// Version is the source version Hull was built from.
var Version = "dev"

// OCISpec is the runtime-spec version Hull implements.
const OCISpec = "1.3.0"
