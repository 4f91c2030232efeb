package cli

import (
	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
)

func newPause(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pause <container-id>",
		Short: "freeze every process of the container",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return container.Pause(g.root, args[0])
		},
	}
}

func newResume(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume <container-id>",
		Short: "thaw a paused container",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return container.Resume(g.root, args[0])
		},
	}
}
