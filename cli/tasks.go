package cli

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

// parseSignal reads TERM, SIGTERM or 15.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown", s)
}

func tasksCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tasks", Aliases: []string{"t", "task"}, Short: "Manage tasks (running containers)"}
	one := func(use, short string, fn func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error) *cobra.Command {
		return &cobra.Command{Use: use + " ID", Short: short, Args: cobra.ExactArgs(1), ValidArgsFunction: completeContainers(g, true),
			RunE: func(cmd *cobra.Command, args []string) error {
				tc, err := tasks(g)
				if err != nil {
					return err
				}
				return fn(tc, cmd, args[0])
			}}
	}
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List tasks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := tasks(g)
			if err != nil {
				return err
			}
			r, err := tc.List(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				var ms []proto.Message
				for _, t := range r.Tasks {
					ms = append(ms, t)
				}
				return g.printJSON(ms)
			}
			w := g.table()
			fmt.Fprintln(w, "TASK\tPID\tSTATUS\tRUNTIME")
			for _, t := range r.Tasks {
				st := t.Status
				if st == "stopped" {
					st = fmt.Sprintf("stopped (exit %d)", t.ExitStatus)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", t.Id, t.Pid, st, t.Runtime)
			}
			return w.Flush()
		},
	}
	var sigName, execID string
	var all bool
	kill := one("kill", "Signal a task's process (default SIGTERM)", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		sig, err := parseSignal(sigName)
		if err != nil {
			return err
		}
		_, err = tc.Kill(cmd.Context(), &hullv1.KillRequest{Id: id, ExecId: execID, Signal: uint32(sig), All: all})
		return err
	})
	kill.Flags().StringVarP(&sigName, "signal", "s", "SIGTERM", "signal name or number")
	kill.Flags().StringVar(&execID, "exec-id", "", "signal this exec instead of init")
	kill.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the container")
	ps := one("ps", "List a task's processes", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		r, err := tc.Pids(cmd.Context(), &hullv1.TaskRequest{Id: id})
		if err != nil {
			return err
		}
		if g.json() {
			return g.printJSON(r)
		}
		fmt.Fprintln(g.stdout, "PID")
		for _, p := range r.Pids {
			fmt.Fprintln(g.stdout, p)
		}
		return nil
	})
	pause := one("pause", "Freeze a task", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		_, err := tc.Pause(cmd.Context(), &hullv1.TaskRequest{Id: id})
		return err
	})
	resume := one("resume", "Thaw a paused task", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		_, err := tc.Resume(cmd.Context(), &hullv1.TaskRequest{Id: id})
		return err
	})
	metrics := one("metrics", "Show a task's cgroup metrics (JSON)", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		r, err := tc.Metrics(cmd.Context(), &hullv1.TaskRequest{Id: id})
		if err != nil {
			return err
		}
		if r.Json != "" {
			fmt.Fprintln(g.stdout, r.Json)
			return nil
		}
		return g.printJSON(r)
	})
	var force bool
	rm := one("rm", "Delete a stopped task", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		t, err := tc.Delete(cmd.Context(), &hullv1.TaskRequest{Id: id, Force: force})
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s: exit %d\n", id, t.ExitStatus)
		return nil
	})
	rm.Flags().BoolVarP(&force, "force", "f", false, "kill it first")
	start := one("start", "Start a created task and wait for it", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		_, err := tc.Start(cmd.Context(), &hullv1.TaskRequest{Id: id})
		return err
	})
	var waitExec string
	wait := one("wait", "Wait for a task's process to exit and print its status", func(tc hullv1.TasksClient, cmd *cobra.Command, id string) error {
		t, err := tc.Wait(cmd.Context(), &hullv1.TaskRequest{Id: id, ExecId: waitExec})
		if err != nil {
			return err
		}
		if g.json() {
			return g.printJSON(t)
		}
		fmt.Fprintf(g.stdout, "exit %d\n", t.ExitStatus)
		return nil
	})
	wait.Flags().StringVar(&waitExec, "exec-id", "", "wait for this exec instead of init")
	cmd.AddCommand(ls, kill, ps, pause, resume, metrics, rm, start, wait)
	return cmd
}
