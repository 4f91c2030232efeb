// Package auto opens the best snapshotter the host allows under a root:
// overlay when a real overlay mount with whiteouts and opaque directories
// works there, the copying native snapshotter otherwise.
package auto

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/native"
	"github.com/hullproject/hull/snapshot/overlay"
)

// Names of the snapshotters.
const (
	Overlay = "overlay"
	Native  = "native"
)

// New opens the snapshotter named name ("overlay", "native", or "" for the
// best one that works) under root and returns it with its name. The choice
// is recorded in <root>/snapshotter: a root keeps its snapshotter, because
// overlay layer directories hold differences and native ones full copies.
func New(root, name string) (snapshot.Snapshotter, string, error) {
	marker := filepath.Join(root, "snapshotter")
	if b, err := os.ReadFile(marker); err == nil {
		prev := strings.TrimSpace(string(b))
		if name != "" && name != prev {
			return nil, "", fmt.Errorf("snapshot root %s holds %s snapshots, not %s: %w", root, prev, name, errdefs.ErrFailedPrecondition)
		}
		name = prev
	}
	s, got, err := open(root, name)
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(marker, []byte(got+"\n"), 0o600); err != nil {
		s.Close()
		return nil, "", err
	}
	return s, got, nil
}

func open(root, name string) (snapshot.Snapshotter, string, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, "", err
	}
	switch name {
	case Overlay:
		s, err := overlay.New(root)
		return s, Overlay, err
	case Native:
		s, err := native.New(root)
		return s, Native, err
	case "":
	default:
		return nil, "", fmt.Errorf("unknown snapshotter %q: %w", name, errdefs.ErrInvalidArgument)
	}
	s, err := overlay.New(root)
	if err == nil {
		return s, Overlay, nil
	}
	if !errors.Is(err, overlay.ErrUnsupported) {
		return nil, "", err
	}
	slog.Info("snapshot: overlay unusable, using the native copying snapshotter", "root", root, "reason", err)
	n, err := native.New(root)
	return n, Native, err
}
