package shim

import (
	"fmt"
	"os"

	"github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/mount"
)

// mountAll mounts the rootfs mounts containerd sent, in order, on target
// (Hull's mount package: flag options, read-only binds, overlays with more
// layers than fit a page of mount data). On error nothing stays mounted.
func mountAll(mounts []*types.Mount, target string) error {
	if err := os.MkdirAll(target, 0o711); err != nil {
		return err
	}
	ms := make([]mount.Mount, 0, len(mounts))
	for _, m := range mounts {
		ms = append(ms, mount.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}
	if err := mount.All(ms, target); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return nil
}

// unmountAll unmounts everything on and below target, lazily, so that a
// process still holding it does not keep the shim from finishing.
func unmountAll(target string) error {
	return mount.UnmountAll(target, unix.MNT_DETACH)
}
