package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
	"github.com/hullproject/hull/runtime/timerslack"
)

func newPs(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] <container-id> [-- ps options]",
		Short: "list the processes of a container",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("ps: want <container-id>")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pids, err := container.Pids(g.root, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return json.NewEncoder(out).Encode(pids)
			case "table", "":
			default:
				return fmt.Errorf("--format %q: want table or json", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			var psBuf bytes.Buffer
			ps := exec.Command("ps", psArgs...)
			ps.Stdout = &psBuf
			err = timerslack.Spawn(ps.Start) // the runtime's original timer slack
			if err == nil {
				err = ps.Wait()
			}
			psOut := psBuf.Bytes()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			lines := strings.Split(strings.TrimRight(string(psOut), "\n"), "\n")
			col := -1
			for i, f := range strings.Fields(lines[0]) {
				if f == "PID" {
					col = i
				}
			}
			if col < 0 {
				return fmt.Errorf("ps output has no PID column")
			}
			in := map[int]bool{}
			for _, p := range pids {
				in[p] = true
			}
			var b bytes.Buffer
			b.WriteString(lines[0] + "\n")
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				if len(f) <= col {
					continue
				}
				if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
					b.WriteString(l + "\n")
				}
			}
			_, err = out.Write(b.Bytes())
			return err
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}
