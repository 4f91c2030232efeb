// Package api holds hulld's gRPC API: hull/v1/hull.proto and the Go code
// generated from it (checked in; `make -C api generate` regenerates it with
// the pinned generators).
package api

//go:generate make generate
