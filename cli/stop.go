package cli

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func stopCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	var sigName string
	cmd := &cobra.Command{
		Use: "stop ID...", Short: "Stop containers: signal (SIGTERM), SIGKILL after --timeout, delete the task", Args: cobra.MinimumNArgs(1), ValidArgsFunction: completeContainers(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := tasks(g)
			if err != nil {
				return err
			}
			sig, err := parseSignal(sigName)
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := stopOne(cmd.Context(), tc, id, sig, timeout); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, id)
			}
			return nil
		},
	}
	cmd.Flags().DurationVarP(&timeout, "timeout", "t", 10*time.Second, "time to wait before SIGKILL")
	cmd.Flags().StringVarP(&sigName, "signal", "s", "SIGTERM", "first signal")
	return cmd
}

func stopOne(ctx context.Context, tc hullv1.TasksClient, id string, sig syscall.Signal, timeout time.Duration) error {
	t, err := tc.Get(ctx, &hullv1.TaskRequest{Id: id})
	if err != nil {
		return err
	}
	if t.Status != "stopped" {
		if _, err := tc.Kill(ctx, &hullv1.KillRequest{Id: id, Signal: uint32(sig)}); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := tc.Wait(wctx, &hullv1.TaskRequest{Id: id})
		cancel()
		if err != nil {
			if _, err := tc.Kill(ctx, &hullv1.KillRequest{Id: id, Signal: uint32(syscall.SIGKILL), All: true}); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
			if _, err := tc.Wait(ctx, &hullv1.TaskRequest{Id: id}); err != nil {
				return err
			}
		}
	}
	_, err = tc.Delete(ctx, &hullv1.TaskRequest{Id: id})
	return err
}
