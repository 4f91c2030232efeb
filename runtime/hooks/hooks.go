// Package hooks runs OCI lifecycle hooks (runtime-spec config.md,
// "POSIX-platform Hooks"): each hook is executed with its args and env,
// gets the container state JSON on stdin, and is killed when its timeout
// passes.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/timerslack"
)

// ErrHook marks a failed hook.
var ErrHook = errors.New("hook failed")

// Run runs hooks in order with state on stdin; the first failure stops
// the run and is returned, naming the hook's kind, index and path.
func Run(ctx context.Context, kind string, hooks []specs.Hook, state *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	data, err := json.Marshal(state)
	if err != nil {
		return err
	}
	for i := range hooks {
		if err := runOne(ctx, &hooks[i], data); err != nil {
			return fmt.Errorf("%w: hooks.%s[%d] (%s): %w", ErrHook, kind, i, hooks[i].Path, err)
		}
	}
	return nil
}

func runOne(ctx context.Context, h *specs.Hook, state []byte) error {
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("timeout must be positive, got %d", *h.Timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	} else {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	// Forked with the runtime's original timer slack (hull-runtime's own
	// is coarser).
	err := timerslack.Spawn(cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		if b := bytes.TrimSpace(out.Bytes()); len(b) > 0 {
			return fmt.Errorf("%w: %s", err, b)
		}
		return err
	}
	return nil
}
