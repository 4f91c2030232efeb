package container

import (
	"errors"
	"fmt"
)

// Status is a container's state in the runtime-spec sense (runtime.md,
// "State"): "creating", "created", "running", "stopped", plus runc's
// "paused".
type Status string

// The states of the lifecycle.
const (
	// Creating: "the container is being created (step 2 in the lifecycle)".
	Creating Status = "creating"
	// Created: "the runtime has finished the create operation (step 2 in
	// the lifecycle), and the container process has neither exited nor
	// executed the user-specified program".
	Created Status = "created"
	// Running: "the container process has executed the user-specified
	// program but has not exited (step 8 in the lifecycle)".
	Running Status = "running"
	// Paused: the container's processes are frozen (runc's extension).
	Paused Status = "paused"
	// Stopped: "the container process has exited (step 10 in the
	// lifecycle)".
	Stopped Status = "stopped"
	// Deleted is where delete leaves a container: it no longer exists.
	Deleted Status = "deleted"
)

// Sentinel errors; callers test them with errors.Is. The texts are
// runc's: containerd's shim matches "container not running" and "does not
// exist" in the runtime's error output.
var (
	ErrNotExist     = errors.New("container does not exist")
	ErrExist        = errors.New("container already exists")
	ErrNotRunning   = errors.New("container not running")
	ErrRunning      = errors.New("container is still running")
	ErrNotStopped   = errors.New("container is not stopped")
	ErrNotCreated   = errors.New("container is not in the created state")
	ErrPaused       = errors.New("container is paused")
	ErrInvalidID    = errors.New("invalid container id")
	ErrInvalidSpec  = errors.New("invalid configuration")
	ErrNotSupported = errors.New("not supported")
)

// TransitionError is an illegal lifecycle transition.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	if e.To == Deleted {
		return fmt.Sprintf("cannot go from %s to %s: the container is not stopped (delete --force kills it first)", e.From, e.To)
	}
	return fmt.Sprintf("cannot go from %s to %s", e.From, e.To)
}

// Is makes a TransitionError match the sentinel that best describes it.
func (e *TransitionError) Is(target error) bool {
	switch target {
	case ErrNotRunning:
		return e.From == Stopped || e.From == Created && e.To == Paused
	case ErrRunning:
		return e.From == Running && e.To == Deleted
	case ErrNotStopped:
		return e.To == Deleted && e.From != Stopped
	case ErrNotCreated:
		return e.To == Running && e.From != Paused
	case ErrPaused:
		return e.From == Paused && e.To != Running && e.To != Stopped
	}
	return false
}

// transitions lists, for each state, the states it may move to.
var transitions = map[Status][]Status{
	Creating: {Created, Stopped, Deleted},
	Created:  {Running, Stopped}, // deleted only with --force (runtime.md delete)
	Running:  {Paused, Stopped},
	Paused:   {Running, Stopped},
	Stopped:  {Deleted},
}

// CheckTransition returns nil when from may move to to, else a
// *TransitionError.
func CheckTransition(from, to Status) error {
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}
