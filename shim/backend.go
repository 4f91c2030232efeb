package shim

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
)

// Backend runs the processes of one container. The task service keeps the
// state machine, the waiters and the events; a backend only does the work.
// native (native.go) drives an OCI runtime CLI on the host; the vm mode will
// be a second Backend talking to hull-agent in a guest.
//
// execID "" names the container's init process.
type Backend interface {
	// Create creates the container and its init process, stopped before
	// the user program (the OCI "created" state), and returns its pid.
	Create(ctx context.Context, c *CreateConfig) (pid int, err error)
	// Start starts the init process or an exec'd process added by Exec.
	Start(ctx context.Context, execID string) (pid int, err error)
	// Exec adds a process to run in the container; Start runs it.
	Exec(ctx context.Context, execID string, c *ExecConfig) error
	// Wait blocks until the process ends and returns its exit. It may be
	// called as soon as Create (init) or Start (exec) has returned.
	Wait(ctx context.Context, execID string) (Exit, error)
	Kill(ctx context.Context, execID string, sig syscall.Signal, all bool) error
	ResizePty(ctx context.Context, execID string, width, height uint32) error
	CloseStdin(ctx context.Context, execID string) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	Pids(ctx context.Context) ([]int, error)
	Update(ctx context.Context, r *specs.LinuxResources) error
	// Stats returns the container's metrics as a protobuf message
	// (containerd's cgroups v1 Metrics on the native backend).
	Stats(ctx context.Context) (proto.Message, error)
	// DeleteProcess releases an exec'd process (its stdio) after it ended.
	DeleteProcess(ctx context.Context, execID string) error
	// Delete removes the container: runtime state, mounts, cgroups, stdio.
	Delete(ctx context.Context) error
}

// CreateConfig is what a backend needs to create a container.
type CreateConfig struct {
	ID, Bundle, Namespace string
	Rootfs                []*types.Mount
	Stdio                 Stdio
	Options               *Options
	// OnOOM, if set, is called when the container's memory cgroup reports
	// an out-of-memory event.
	OnOOM func()
}

// ExecConfig is an exec'd process: its OCI process spec and stdio.
type ExecConfig struct {
	Spec  *specs.Process
	Stdio Stdio
}

// backends maps Options.Mode to the backend constructor. native is built
// in; the vm mode registers itself with RegisterBackend.
var backends = map[string]func(*Options) (Backend, error){
	"native": func(*Options) (Backend, error) { return NewNative(), nil },
}

// RegisterBackend makes mode selectable with `mode = "..."` in the runtime
// options. It is meant for init functions.
func RegisterBackend(mode string, newBackend func(*Options) (Backend, error)) {
	backends[mode] = newBackend
}

// newBackendFor makes the backend for o.Mode ("" is native).
func newBackendFor(o *Options) (Backend, error) {
	mode := o.Mode
	if mode == "" {
		mode = "native"
	}
	f, ok := backends[mode]
	if !ok {
		return nil, fmt.Errorf("runtime mode %q: %w", mode, errdefs.ErrNotImplemented)
	}
	return f(o)
}

// Errors of the backends.
var (
	errNoTerminal = errors.New("no terminal")
	// ErrProcessNotFound is an exec id the container does not have.
	ErrProcessNotFound = errdefs.ErrNotFound
)
