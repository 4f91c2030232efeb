package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

// completeContainers completes container ids of the namespace from the
// daemon (nothing when it is not running). With first set only the first
// argument is completed.
func completeContainers(g *globals, first bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if first && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		c, err := containers(g)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := c.List(ctx, &hullv1.Empty{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, x := range r.Containers {
			ids = append(ids, x.Id)
		}
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeImages completes image names for the first argument.
func completeImages(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := images(g)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := c.List(ctx, &hullv1.Empty{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, i := range r.Images {
			names = append(names, i.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
