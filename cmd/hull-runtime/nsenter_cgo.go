//go:build cgo

package main

// A cgo build joins namespaces itself (`hull-runtime init` with
// _HULL_NSENTER) and needs no hull-runtime-helper.
import _ "github.com/hullproject/hull/runtime/nsenter" // joins namespaces before the Go runtime starts
