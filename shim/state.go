package shim

import (
	"fmt"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
)

// Status is where a process stands in its life. The states follow the OCI
// runtime spec ("created", "running", "stopped") plus the two the shim API
// adds: paused (the container's cgroup is frozen) and deleted (the shim has
// released everything it held for the process).
type Status int

// The process states.
const (
	Created Status = iota
	Running
	Paused
	Stopped
	Deleted
)

var statusNames = [...]string{"created", "running", "paused", "stopped", "deleted"}

func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("status(%d)", int(s))
	}
	return statusNames[s]
}

// Proto is the status as containerd's task API spells it.
func (s Status) Proto() task.Status {
	switch s {
	case Created:
		return task.Status_CREATED
	case Running:
		return task.Status_RUNNING
	case Paused:
		return task.Status_PAUSED
	case Stopped, Deleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}

// transitions lists, for each state, the states it may move to.
//
//	created -> running (start), stopped (killed before start), deleted
//	running -> paused, stopped
//	paused  -> running (resume), stopped (killed while frozen)
//	stopped -> deleted
var transitions = map[Status][]Status{
	Created: {Running, Stopped, Deleted},
	Running: {Paused, Stopped},
	Paused:  {Running, Stopped},
	Stopped: {Deleted},
}

// CanTransition reports whether a process in state from may move to to.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// TransitionError is an illegal move of the state machine. It matches
// errdefs.ErrFailedPrecondition with errors.Is.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("process is %s, cannot become %s", e.From, e.To)
}

// Unwrap makes a TransitionError an errdefs.ErrFailedPrecondition.
func (e *TransitionError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// checkTransition returns a *TransitionError when from -> to is illegal.
func checkTransition(from, to Status) error {
	if !CanTransition(from, to) {
		return &TransitionError{From: from, To: to}
	}
	return nil
}
