package cli

import (
	"github.com/spf13/cobra"
)

// attachCmd joins the stdio of a running container (again, for example
// after hulld restarted); its exit status is the container's.
func attachCmd(g *globals) *cobra.Command {
	var interactive, tty bool
	var execID string
	cmd := &cobra.Command{
		Use: "attach [-i] [-t] ID", Short: "Attach to a running container's output (and input with -i) until it exits", Args: cobra.ExactArgs(1),
		ValidArgsFunction: completeContainers(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := tasks(g)
			if err != nil {
				return err
			}
			a, err := attach(cmd.Context(), g, tc, args[0], execID)
			if err != nil {
				return err
			}
			code, err := a.run(cmd.Context(), interactive, tty)
			if err != nil {
				return err
			}
			return exitErr(code)
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "send stdin")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "the process has a terminal: put the local one in raw mode")
	cmd.Flags().StringVar(&execID, "exec-id", "", "attach to this exec instead of init")
	return cmd
}
