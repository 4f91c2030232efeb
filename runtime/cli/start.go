package cli

import (
	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
)

func newStart(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start <container-id>",
		Short: "run the user process of a created container",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return container.Start(cmd.Context(), g.root, args[0])
		},
	}
}
