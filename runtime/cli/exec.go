package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/container"
)

func newExec(g *globals) *cobra.Command {
	var (
		processFile, consoleSocket, pidFile, cwd, user, apparmor, label string
		env, caps, addGids                                              []string
		tty, detach, noNewPrivs                                         bool
		preserveFDs                                                     int
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] <container-id> [command [args...]]",
		Short: "run a process in a running container",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("exec: want <container-id>")
			}
			if processFile == "" && len(args) < 2 {
				return fmt.Errorf("exec: want a command or --process")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			h, err := container.Load(g.root, id)
			if err != nil {
				return err
			}
			spec, err := h.FullSpec()
			h.Close()
			if err != nil {
				return err
			}
			var p specs.Process
			if processFile != "" {
				data, err := os.ReadFile(processFile)
				if err != nil {
					return fmt.Errorf("--process: %w", err)
				}
				if err := json.Unmarshal(data, &p); err != nil {
					return fmt.Errorf("--process %s: %w", processFile, err)
				}
			} else {
				// runc: the container's process settings, with these args.
				p = *spec.Process
				p.Args = args[1:]
				p.Terminal = tty
				p.Env = append(append([]string(nil), p.Env...), env...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if user != "" {
					u, g, _ := strings.Cut(user, ":")
					uid, err := strconv.ParseUint(u, 10, 32)
					if err != nil {
						return fmt.Errorf("--user %q: want uid[:gid]", user)
					}
					p.User.UID = uint32(uid)
					if g != "" {
						gid, err := strconv.ParseUint(g, 10, 32)
						if err != nil {
							return fmt.Errorf("--user %q: want uid[:gid]", user)
						}
						p.User.GID = uint32(gid)
					}
				}
				for _, s := range addGids {
					gid, err := strconv.ParseUint(s, 10, 32)
					if err != nil {
						return fmt.Errorf("--additional-gids %q: %w", s, err)
					}
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
				}
				if len(caps) > 0 {
					c := *p.Capabilities
					for _, name := range caps {
						c.Bounding = append(c.Bounding, name)
						c.Effective = append(c.Effective, name)
						c.Permitted = append(c.Permitted, name)
						c.Ambient = append(c.Ambient, name)
					}
					p.Capabilities = &c
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
				if apparmor != "" {
					p.ApparmorProfile = apparmor
				}
				if label != "" {
					p.SelinuxLabel = label
				}
			}
			if !detach && p.Terminal && consoleSocket == "" {
				tty, err := newLocalTTY()
				if err != nil {
					return errTTY(err)
				}
				defer tty.close()
				consoleSocket = tty.path()
			}
			if !detach {
				_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
			}
			var sigs chan os.Signal
			if !detach {
				sigs = make(chan os.Signal, 32)
				signal.Notify(sigs, forwardedSignals...)
			}
			proc, err := container.Exec(cmd.Context(), container.ExecOptions{
				Root: g.root, ID: id, Process: &p, ConsoleSocket: consoleSocket,
				PidFile: pidFile, PreserveFDs: preserveFDs,
			})
			if err != nil {
				return err
			}
			if detach {
				return nil
			}
			if code := forwardUntilExit(proc.Pid, proc.Wait, sigs); code != 0 {
				return &exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processFile, "process", "p", "", "process.json to run")
	f.StringVar(&consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.StringVar(&pidFile, "pid-file", "", "file to write the process's pid to")
	f.StringVar(&cwd, "cwd", "", "working directory")
	f.StringVarP(&user, "user", "u", "", "uid[:gid]")
	f.StringArrayVarP(&env, "env", "e", nil, "extra environment (KEY=VALUE)")
	f.StringArrayVarP(&caps, "cap", "c", nil, "extra capability (CAP_...)")
	f.StringArrayVarP(&addGids, "additional-gids", "g", nil, "extra group id")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pty (needs --console-socket)")
	f.BoolVarP(&detach, "detach", "d", false, "do not wait for the process")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs")
	f.StringVar(&apparmor, "apparmor", "", "AppArmor profile")
	f.StringVar(&label, "process-label", "", "SELinux label")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass N extra fds (from 3) to the process")
	return cmd
}
