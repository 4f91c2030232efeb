package network

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Sentinel errors. Each wraps an errdefs kind so that hulld maps it to the
// right gRPC code; callers test them with errors.Is. The errors returned by
// the package wrap these with the details (network name, ip:port/proto,
// plugin and directories).
var (
	// ErrUnknownNetwork: no conflist of that name in the configuration directory.
	ErrUnknownNetwork = fmt.Errorf("unknown network: %w", errdefs.ErrNotFound)
	// ErrPortInUse: a host port is held by another attachment or bound by a host process.
	ErrPortInUse = fmt.Errorf("port already in use: %w", errdefs.ErrConflict)
	// ErrInvalidPort: a malformed or unsupported port mapping.
	ErrInvalidPort = fmt.Errorf("invalid port mapping: %w", errdefs.ErrInvalidArgument)
	// ErrMissingPlugin: a CNI plugin named by a conflist is in none of the plugin directories.
	ErrMissingPlugin = fmt.Errorf("missing CNI plugin: %w", errdefs.ErrFailedPrecondition)
	// ErrNetworkInUse: the network still has attachments.
	ErrNetworkInUse = fmt.Errorf("network in use: %w", errdefs.ErrFailedPrecondition)
)
