//go:build !cgo

package main

import "github.com/hullproject/hull/runtime/timerslack"

// slackOriginal raises the timer slack of a hull-runtime CLI call to 1 ms
// (see timerslack.go, the cgo build's C constructor, and runtime/timerslack)
// and returns the slack it was started with, 0 when unchanged. Without cgo
// it runs in main, once the Go runtime's first threads exist: it changes
// them through /proc.
func slackOriginal() uint64 { return timerslack.RaiseAll(1000000) }
