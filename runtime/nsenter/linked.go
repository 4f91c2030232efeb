package nsenter

import "github.com/hullproject/hull/runtime/initproc"

func init() { initproc.NsenterLinked = true }
