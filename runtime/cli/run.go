package cli

import (
	"os"
	"os/signal"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/container"
	"github.com/hullproject/hull/runtime/internal/trace"
)

func newRun(g *globals) *cobra.Command {
	var c createFlags
	var detach, keep bool
	cmd := &cobra.Command{
		Use:   "run [flags] <container-id>",
		Short: "create and start a container; without -d wait for it and exit with its code",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			trace.Mark("run: parsed")
			id := args[0]
			ctx := cmd.Context()
			if !detach {
				// The init may be a grandchild (joined pid namespace):
				// be its reaper so Wait sees it.
				_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
			}
			var sigs chan os.Signal
			notified := make(chan struct{})
			if !detach {
				// Catch signals from before the process exists, to
				// forward. Notify costs a channel round trip with the
				// Go runtime's signal thread per signal (0.3-0.4 ms for
				// the ten): done beside create, on the other P.
				sigs = make(chan os.Signal, 32)
				go func() {
					signal.Notify(sigs, forwardedSignals...)
					close(notified)
				}()
			} else {
				close(notified)
			}
			trace.Mark("run: signals")
			o := c.options(g, id)
			o.StartNow = true
			if !detach && o.ConsoleSocket == "" {
				var tty *localTTY
				defer func() {
					if tty != nil {
						tty.close()
					}
				}()
				o.LocalConsole = func() (string, error) {
					var err error
					if tty, err = newLocalTTY(); err != nil {
						return "", errTTY(err)
					}
					return tty.path(), nil
				}
			}
			p, err := container.Create(ctx, o)
			if err != nil {
				return err
			}
			trace.Mark("created")
			if p.HasPoststart {
				if err := container.Poststart(ctx, g.root, id); err != nil {
					container.Delete(ctx, g.root, id, true)
					return err
				}
			}
			trace.Mark("started")
			if detach {
				return nil
			}
			<-notified
			code := forwardUntilExit(p.Pid, p.Wait, sigs)
			// No signal.Stop: it costs the Go runtime's signal thread a
			// round trip per signal (~0.3 ms for the twelve), and this
			// process exits once the container is deleted. A signal that
			// comes meanwhile lands in sigs, unread, instead of killing
			// the runtime halfway through the delete.
			trace.Mark("exited")
			if !keep {
				p.DeleteExited(ctx, g.root, id)
			}
			trace.Mark("deleted")
			if code != 0 {
				return &exitError{code}
			}
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
	cmd.Flags().BoolVar(&keep, "keep", false, "do not delete the container after it exits")
	return cmd
}

// listenFDs is the number of socket-activation fds ($LISTEN_FDS, when
// $LISTEN_PID is this process) to pass on, as runc does.
func listenFDs() int {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// forwardedSignals are passed on to the container's process by a
// foreground run or exec: the ones a user or supervisor sends to stop,
// reload or suspend a program. SIGCHLD, SIGURG (Go's preemption) and
// SIGWINCH (the terminal's) are the runtime's own.
var forwardedSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPWR,
}

// forwardUntilExit passes the signals arriving on sigs to pid until wait
// returns, and gives the exit code (255 when it cannot be had).
func forwardUntilExit(pid int, wait func() (int, error), sigs <-chan os.Signal) int {
	done := make(chan int, 1)
	go func() {
		code, err := wait()
		if err != nil {
			code = 255
		}
		done <- code
	}()
	for {
		select {
		case s := <-sigs:
			if s == unix.SIGCHLD || s == unix.SIGURG {
				continue
			}
			unix.Kill(pid, s.(unix.Signal))
		case code := <-done:
			return code
		}
	}
}
