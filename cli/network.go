package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func networkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Aliases: []string{"networks", "net"}, Short: "Manage CNI networks (containers join one with run --net)"}
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List networks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := networks(g)
			if err != nil {
				return err
			}
			r, err := nc.List(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				var ms []proto.Message
				for _, n := range r.Networks {
					ms = append(ms, n)
				}
				return g.printJSON(ms)
			}
			w := g.table()
			fmt.Fprintln(w, "NETWORK\tBRIDGE\tSUBNET\tGATEWAY\tPLUGINS\tDEFAULT")
			for _, n := range r.Networks {
				def := ""
				if n.Default {
					def = "*"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, orDash(n.Bridge), orDash(n.Subnet), orDash(n.Gateway), strings.Join(n.Plugins, ","), def)
			}
			return w.Flush()
		},
	}
	var subnet, gateway, bridge string
	create := &cobra.Command{
		Use: "create [flags] NAME", Short: "Create a bridge network (a conflist in hulld's [network] conf_dir)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := networks(g)
			if err != nil {
				return err
			}
			n, err := nc.Create(cmd.Context(), &hullv1.CreateNetworkRequest{Name: args[0], Subnet: subnet, Gateway: gateway, Bridge: bridge})
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(n)
			}
			fmt.Fprintf(g.stdout, "%s (bridge %s, subnet %s, gateway %s)\n", n.Name, n.Bridge, n.Subnet, n.Gateway)
			return nil
		},
	}
	create.Flags().StringVar(&subnet, "subnet", "", "IPv4 subnet in CIDR form (default: a free one)")
	create.Flags().StringVar(&gateway, "gateway", "", "gateway address in the subnet (default: its first address)")
	create.Flags().StringVar(&bridge, "bridge", "", "bridge interface name (default: derived from NAME)")
	rm := &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"remove", "delete"}, Short: "Remove networks no container uses", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := networks(g)
			if err != nil {
				return err
			}
			for _, name := range args {
				if _, err := nc.Remove(cmd.Context(), &hullv1.RemoveNetworkRequest{Name: name}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(ls, create, rm)
	return cmd
}
