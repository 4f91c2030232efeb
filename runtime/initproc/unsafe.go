package initproc

import "unsafe"

func uintptrOf(g []uint32) uintptr { return uintptr(unsafe.Pointer(&g[0])) }
