package network

import (
	"github.com/containerd/errdefs"
)

// Sentinel errors. Each unwraps to an errdefs kind, so hulld maps it to the
// right gRPC code and errdefs.IsNotFound and the like hold; callers test them
// with errors.Is. The errors returned by the package wrap these with the
// details (network name, ip:port/proto and holder, plugin and directories).
var (
	// ErrUnknownNetwork: no conflist of that name in the configuration directory.
	ErrUnknownNetwork error = &kindError{"unknown network", errdefs.ErrNotFound}
	// ErrPortInUse: a host port is held by another attachment or bound by a host process.
	ErrPortInUse error = &kindError{"port already in use", errdefs.ErrConflict}
	// ErrInvalidPort: a malformed or unsupported port mapping.
	ErrInvalidPort error = &kindError{"invalid port mapping", errdefs.ErrInvalidArgument}
	// ErrMissingPlugin: a CNI plugin named by a conflist is in none of the plugin directories.
	ErrMissingPlugin error = &kindError{"missing CNI plugin", errdefs.ErrFailedPrecondition}
	// ErrNetworkInUse: the network still has attachments.
	ErrNetworkInUse error = &kindError{"network in use", errdefs.ErrFailedPrecondition}
)

// kindError is a sentinel with its own message that unwraps to an errdefs
// kind (fmt.Errorf("...: %w", kind) would put the kind's text in every message).
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
