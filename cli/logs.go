package cli

import (
	"io"

	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func logsCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "logs [-f] ID", Short: "Print a container's output (stdout and stderr of its init process)", Args: cobra.ExactArgs(1), ValidArgsFunction: completeContainers(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := tasks(g)
			if err != nil {
				return err
			}
			st, err := tc.Logs(cmd.Context(), &hullv1.LogsRequest{Id: args[0], Follow: follow})
			if err != nil {
				return err
			}
			for {
				m, err := st.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fromRPC(err)
				}
				if _, err := g.stdout.Write(m.Data); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the container exits")
	return cmd
}
