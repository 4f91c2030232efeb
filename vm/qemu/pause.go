package qemu

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hullproject/hull/vm"
)

var _ vm.Pauser = (*QEMU)(nil)

// Pause implements vm.Pauser: QMP stop.
func (q *QEMU) Pause(ctx context.Context) error {
	return q.qmpCommand(ctx, "stop")
}

// Resume implements vm.Pauser: QMP cont.
func (q *QEMU) Resume(ctx context.Context) error {
	return q.qmpCommand(ctx, "cont")
}

// Status is QMP query-status's status ("running", "paused", ...).
func (q *QEMU) Status(ctx context.Context) (string, error) {
	c, err := q.qmpClient()
	if err != nil {
		return "", err
	}
	r, err := c.execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r, &st); err != nil {
		return "", fmt.Errorf("%w: query-status: %w", ErrQMP, err)
	}
	return st.Status, nil
}

func (q *QEMU) qmpClient() (*qmpClient, error) {
	q.mu.Lock()
	c := q.qmp
	q.mu.Unlock()
	if c == nil {
		return nil, vm.ErrNotStarted
	}
	select {
	case <-q.done:
		return nil, vm.ErrNotStarted
	default:
	}
	return c, nil
}

func (q *QEMU) qmpCommand(ctx context.Context, cmd string) error {
	c, err := q.qmpClient()
	if err != nil {
		return err
	}
	_, err = c.execute(ctx, cmd, nil)
	return err
}
