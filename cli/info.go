package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func infoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "info", Short: "Show the daemon and its runtimes (usable or not, and why)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := hullv1.NewSystemClient(c).Info(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(r)
			}
			fmt.Fprintf(g.stdout, "Version:     %s\nAddress:     %s\nRoot:        %s\nState:       %s\nSnapshotter: %s\nRuntimes:\n", r.Version, r.Address, r.Root, r.State, r.Snapshotter)
			w := g.table()
			fmt.Fprintln(w, "  NAME\tTYPE\tUSABLE\tDETAIL")
			for _, rt := range r.Runtimes {
				name := rt.Name
				if rt.Default {
					name += " (default)"
				}
				detail := rt.Reason
				if rt.Usable && detail == "" {
					detail = rt.Shim + " → " + rt.Binary
					if rt.Version != "" {
						detail += " (" + rt.Version + ")"
					}
				}
				usable := "yes"
				if !rt.Usable {
					usable = "no"
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", name, rt.Type, usable, detail)
			}
			return w.Flush()
		},
	}
}
