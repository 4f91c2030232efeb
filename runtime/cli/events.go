package cli

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
)

type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func newEvents(g *globals) *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events [flags] <container-id>",
		Short: "print container events (stats every --interval) as JSON lines",
		Args:  exactArgs(1, "container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			enc := json.NewEncoder(cmd.OutOrStdout())
			if interval <= 0 {
				interval = 5 * time.Second
			}
			for {
				s, err := container.Stats(g.root, id)
				if err != nil {
					if !stats && (errors.Is(err, container.ErrNotRunning) || errors.Is(err, container.ErrNotExist)) {
						return nil
					}
					return err
				}
				if err := enc.Encode(event{Type: "stats", ID: id, Data: s}); err != nil {
					return err
				}
				if stats {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the stats once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between stats events")
	return cmd
}
