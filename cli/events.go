package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

func eventsCmd(g *globals) *cobra.Command {
	var topics []string
	cmd := &cobra.Command{
		Use: "events", Short: "Stream the namespace's events", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := hullv1.NewEventsClient(c).Subscribe(cmd.Context(), &hullv1.SubscribeRequest{Topics: topics})
			if err != nil {
				return err
			}
			for {
				ev, err := st.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fromRPC(err)
				}
				if g.json() {
					data, _ := protojson.Marshal(ev)
					fmt.Fprintln(g.stdout, string(data))
				} else {
					line := fmt.Sprintf("%s %s %s", ev.Timestamp.AsTime().Format(time.RFC3339Nano), ev.Topic, ev.ContainerId)
					if ev.ExecId != "" {
						line += " exec=" + ev.ExecId
					}
					if ev.Pid != 0 {
						line += fmt.Sprintf(" pid=%d", ev.Pid)
					}
					if ev.Topic == "/tasks/exit" || ev.Topic == "/tasks/delete" {
						line += fmt.Sprintf(" status=%d", ev.ExitStatus)
					}
					fmt.Fprintln(g.stdout, line)
				}
				if f, ok := g.stdout.(*os.File); ok {
					_ = f.Sync()
				}
			}
		},
	}
	cmd.Flags().StringArrayVar(&topics, "topic", nil, "only these topics (e.g. /tasks/exit)")
	return cmd
}

// publishCmd is the shims' -publish-binary: `hull --address A publish
// --topic T --namespace N` with the event (a protobuf Any) on stdin.
func publishCmd(g *globals) *cobra.Command {
	var topic string
	cmd := &cobra.Command{
		Use: "publish", Hidden: true, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := io.ReadAll(os.Stdin)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			_, err = hullv1.NewEventsClient(c).Publish(cmd.Context(), &hullv1.PublishRequest{Namespace: g.namespace, Topic: topic, Event: data})
			return err
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "event topic")
	return cmd
}
