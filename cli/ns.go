package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func nsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "namespaces", Aliases: []string{"ns"}, Short: "Manage namespaces"}
	cmd.AddCommand(&cobra.Command{
		Use: "create NAME...", Short: "Create namespaces", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := namespaces(g)
			if err != nil {
				return err
			}
			for _, n := range args {
				if _, err := c.Create(cmd.Context(), &hullv1.NamespaceRequest{Name: n}); err != nil {
					return err
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List namespaces", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := namespaces(g)
			if err != nil {
				return err
			}
			r, err := c.List(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(r)
			}
			for _, n := range r.Names {
				fmt.Fprintln(g.stdout, n)
			}
			return nil
		},
	}, &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"remove"}, Short: "Remove empty namespaces", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := namespaces(g)
			if err != nil {
				return err
			}
			for _, n := range args {
				if _, err := c.Delete(cmd.Context(), &hullv1.NamespaceRequest{Name: n}); err != nil {
					return err
				}
			}
			return nil
		},
	})
	return cmd
}
