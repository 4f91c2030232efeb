package cli

import (
	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
)

type createFlags struct {
	bundle, consoleSocket, pidFile string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
}

func (c *createFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&c.bundle, "bundle", "b", ".", "path to the bundle directory")
	f.StringVar(&c.consoleSocket, "console-socket", "", "unix socket that receives the pty master (process.terminal)")
	f.StringVar(&c.pidFile, "pid-file", "", "file to write the init's pid to")
	f.BoolVar(&c.noPivot, "no-pivot", false, "do not use pivot_root (MS_MOVE + chroot)")
	f.BoolVar(&c.noNewKeyring, "no-new-keyring", false, "do not make a new session keyring")
	f.IntVar(&c.preserveFDs, "preserve-fds", 0, "pass N extra fds (from 3) to the process")
}

func (c *createFlags) options(g *globals, id string) container.CreateOptions {
	return container.CreateOptions{
		Root: g.root, ID: id, Bundle: c.bundle, ConsoleSocket: c.consoleSocket,
		PidFile: c.pidFile, NoPivot: c.noPivot, NoNewKeyring: c.noNewKeyring,
		PreserveFDs: c.preserveFDs + listenFDs(), ListenFDs: listenFDs(),
	}
}

func newCreate(g *globals) *cobra.Command {
	var c createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] <container-id>",
		Short: "create a container (its process waits for start)",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := container.Create(cmd.Context(), c.options(g, args[0]))
			return err
		},
	}
	c.register(cmd)
	return cmd
}
