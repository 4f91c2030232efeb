package cli

import (
	"fmt"
	"sort"
	"strings"

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
			if err := w.Flush(); err != nil {
				return err
			}
			for _, rt := range r.Runtimes {
				printDetails(g, rt)
			}
			return nil
		},
	}
}

// detailOrder is the order in which `hull info` prints a runtime's details
// (keys not listed follow, sorted).
var detailOrder = []string{"hypervisor", "agent_transport", "accel", "accel_reason", "tcg_tb_size_mib", "kernel", "kernel_release", "kernel_source", "kernel_config_sha256", "kernel_sizes", "initrd", "agent", "guest_dir"}

// printDetails prints a runtime's details (for vm runtimes: the guest
// kernel, the agent, the acceleration and why) under its name.
func printDetails(g *globals, rt *hullv1.RuntimeInfo) {
	if len(rt.Details) == 0 {
		return
	}
	fmt.Fprintf(g.stdout, "Runtime %s:\n", rt.Name)
	keys := make([]string, 0, len(rt.Details))
	seen := map[string]bool{}
	for _, k := range detailOrder {
		if _, ok := rt.Details[k]; ok {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range rt.Details {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	w := g.table()
	for _, k := range append(keys, rest...) {
		fmt.Fprintf(w, "  %s:\t%s\n", strings.ReplaceAll(k, "_", " "), rt.Details[k])
	}
	_ = w.Flush()
}
