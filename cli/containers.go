package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func containersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "containers", Aliases: []string{"c", "container"}, Short: "Manage containers"}
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := containers(g)
			if err != nil {
				return err
			}
			r, err := c.List(cmd.Context(), &hullv1.Empty{})
			if err != nil {
				return err
			}
			if g.json() {
				var ms []proto.Message
				for _, x := range r.Containers {
					x.Spec = nil
					ms = append(ms, x)
				}
				return g.printJSON(ms)
			}
			w := g.table()
			fmt.Fprintln(w, "CONTAINER\tIMAGE\tRUNTIME\tNETWORK\tIP\tPORTS\tLABELS")
			for _, x := range r.Containers {
				var ls []string
				for k, v := range x.Labels {
					ls = append(ls, k+"="+v)
				}
				sort.Strings(ls)
				var ips []string
				for _, ip := range x.Ips {
					addr, _, _ := strings.Cut(ip, "/")
					ips = append(ips, addr)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Id, x.Image, x.Runtime, x.Network,
					orDash(strings.Join(ips, ",")), orDash(portsString(x.Ports)), strings.Join(ls, ","))
			}
			return w.Flush()
		},
	}
	var force bool
	rm := &cobra.Command{
		Use: "rm ID...", Aliases: []string{"remove", "delete"}, Short: "Remove containers", Args: cobra.MinimumNArgs(1), ValidArgsFunction: completeContainers(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := containers(g)
			if err != nil {
				return err
			}
			for _, id := range args {
				if _, err := c.Delete(cmd.Context(), &hullv1.DeleteContainerRequest{Id: id, Force: force}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "kill and delete a running task first")
	info := &cobra.Command{
		Use: "info ID", Short: "Show a container's record and spec (JSON)", Args: cobra.ExactArgs(1), ValidArgsFunction: completeContainers(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := containers(g)
			if err != nil {
				return err
			}
			x, err := c.Get(cmd.Context(), &hullv1.ContainerRequest{Id: args[0]})
			if err != nil {
				return err
			}
			// The spec is JSON already: show it as JSON, not base64.
			spec := json.RawMessage(x.Spec)
			if !json.Valid(spec) {
				spec = json.RawMessage("null")
			}
			x.Spec = nil
			rec, err := protojson.Marshal(x)
			if err != nil {
				return err
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(rec, &m); err != nil {
				return err
			}
			m["spec"] = spec
			return g.printJSON(m)
		},
	}
	cmd.AddCommand(ls, rm, info)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
