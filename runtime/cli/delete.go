package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
)

func newDelete(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [flags] <container-id>",
		Short: "delete a stopped container (--force: any)",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := container.Delete(cmd.Context(), g.root, args[0], force)
			if force && errors.Is(err, container.ErrNotExist) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container if it is running")
	return cmd
}
