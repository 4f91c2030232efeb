package shim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestTransitions(t *testing.T) {
	all := []Status{Created, Running, Paused, Stopped, Deleted}
	allowed := map[[2]Status]bool{
		{Created, Running}: true, {Created, Stopped}: true, {Created, Deleted}: true,
		{Running, Paused}: true, {Running, Stopped}: true,
		{Paused, Running}: true, {Paused, Stopped}: true,
		{Stopped, Deleted}: true,
	}
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]Status{from, to}]
			err := checkTransition(from, to)
			if (err == nil) != want {
				t.Errorf("%s -> %s: err=%v, want allowed=%v", from, to, err, want)
			}
			if err != nil {
				var te *TransitionError
				if !errors.As(err, &te) || te.From != from || te.To != to {
					t.Errorf("%s -> %s: error %v is not a TransitionError{%s,%s}", from, to, err, from, to)
				}
				if !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Errorf("%s -> %s: %v does not match ErrFailedPrecondition", from, to, err)
				}
			}
		}
	}
}

func TestProcessLifecycle(t *testing.T) {
	tests := []struct {
		name  string
		steps func(p *process) error
		want  Status
	}{
		{"start", func(p *process) error { return p.started(10) }, Running},
		{"pause resume", func(p *process) error {
			if err := p.started(10); err != nil {
				return err
			}
			if err := p.transition(Paused); err != nil {
				return err
			}
			return p.transition(Running)
		}, Running},
		{"exit before start returns", func(p *process) error {
			p.exited(Exit{Pid: 10, Status: 3, At: time.Now()})
			return p.started(10)
		}, Stopped},
		{"kill while created", func(p *process) error {
			p.exited(Exit{Status: 137})
			return p.transition(Deleted)
		}, Deleted},
		{"delete created", func(p *process) error { return p.transition(Deleted) }, Deleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcess("", Stdio{})
			if err := tt.steps(p); err != nil {
				t.Fatal(err)
			}
			if s, _, _ := p.snapshot(); s != tt.want {
				t.Fatalf("status %s, want %s", s, tt.want)
			}
		})
	}
}

func TestProcessIllegal(t *testing.T) {
	tests := []struct {
		name  string
		steps func(p *process) error
	}{
		{"resume running", func(p *process) error {
			_ = p.started(1)
			return p.transition(Running)
		}},
		{"pause created", func(p *process) error { return p.transition(Paused) }},
		{"delete running", func(p *process) error {
			_ = p.started(1)
			return p.transition(Deleted)
		}},
		{"start twice", func(p *process) error {
			_ = p.started(1)
			return p.started(1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.steps(newProcess("", Stdio{}))
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("got %v, want a failed-precondition transition error", err)
			}
		})
	}
}

func TestProcessWait(t *testing.T) {
	p := newProcess("e1", Stdio{})
	_ = p.started(42)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a running process: %v, want deadline exceeded", err)
	}
	at := time.Now()
	go p.exited(Exit{Status: 3, At: at})
	e, err := p.wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != 3 || e.Pid != 42 || !e.At.Equal(at) {
		t.Fatalf("exit %+v, want status 3 pid 42", e)
	}
	if p.exited(Exit{Status: 9}) {
		t.Fatal("a second exit was recorded")
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "t123-4", "my_container.v2", strings.Repeat("x", 76)} {
		if err := validID("container", id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", ".x", "a/b", "../x", "a b", strings.Repeat("x", 77), "é"} {
		if err := validID("container", id); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want invalid argument", id, err)
		}
	}
}
