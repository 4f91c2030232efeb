package container

import (
	"errors"
	"testing"
)

func TestCheckTransition(t *testing.T) {
	tests := []struct {
		from, to Status
		ok       bool
		is       error
	}{
		{Creating, Created, true, nil},
		{Created, Running, true, nil},
		{Created, Deleted, false, ErrNotStopped},
		{Running, Paused, true, nil},
		{Paused, Running, true, nil},
		{Running, Stopped, true, nil},
		{Stopped, Deleted, true, nil},
		{Running, Running, false, ErrNotCreated},
		{Stopped, Running, false, ErrNotCreated},
		{Running, Deleted, false, ErrRunning},
		{Running, Deleted, false, ErrNotStopped},
		{Stopped, Paused, false, ErrNotRunning},
		{Created, Paused, false, ErrNotRunning},
		{Paused, Deleted, false, ErrPaused},
		{Stopped, Stopped, false, ErrNotRunning},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"->"+string(tt.to), func(t *testing.T) {
			err := CheckTransition(tt.from, tt.to)
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var te *TransitionError
			if !errors.As(err, &te) || te.From != tt.from || te.To != tt.to {
				t.Fatalf("got %v, want TransitionError{%s,%s}", err, tt.from, tt.to)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("%v is not %v", err, tt.is)
			}
		})
	}
}
