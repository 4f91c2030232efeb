package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func execCmd(g *globals) *cobra.Command {
	var tty, interactive, detach bool
	var user, cwd, execID string
	var env []string
	cmd := &cobra.Command{
		Use:               "exec [flags] ID CMD [ARG...]",
		Short:             "Run a process in a running container; the exit status is the process's",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeContainers(g, true),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			tc, err := tasks(g)
			if err != nil {
				return err
			}
			id := args[0]
			if execID == "" {
				b := make([]byte, 6)
				rand.Read(b)
				execID = "exec-" + hex.EncodeToString(b)
			}
			pc := &hullv1.ProcessConfig{Args: args[1:], Env: env, User: user, Cwd: cwd, Tty: tty, Stdin: interactive}
			if _, err := tc.Exec(ctx, &hullv1.ExecRequest{Id: id, ExecId: execID, Process: pc}); err != nil {
				return err
			}
			if detach {
				_, err := tc.Start(ctx, &hullv1.TaskRequest{Id: id, ExecId: execID})
				return err
			}
			defer func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				_, _ = tc.Delete(dctx, &hullv1.TaskRequest{Id: id, ExecId: execID, Force: true})
			}()
			a, err := attach(ctx, g, tc, id, execID)
			if err != nil {
				return err
			}
			if _, err := tc.Start(ctx, &hullv1.TaskRequest{Id: id, ExecId: execID}); err != nil {
				a.cancel()
				return err
			}
			code, err := a.run(ctx, interactive, tty)
			if err != nil {
				return err
			}
			return exitErr(code)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	fl.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&detach, "detach", "d", false, "start and return")
	fl.StringVarP(&user, "user", "u", "", "uid[:gid]")
	fl.StringVar(&cwd, "cwd", "", "working directory")
	fl.StringArrayVar(&env, "env", nil, "set an environment variable KEY=VALUE")
	fl.StringVar(&execID, "exec-id", "", "id of the exec (default: random)")
	return cmd
}
