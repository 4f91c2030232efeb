// Package cli is the `hull` command line: one file per verb, each a thin
// cobra command over hulld's gRPC API (api/hull/v1).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

// DefaultAddress is hulld's default socket.
const DefaultAddress = "/run/hull/hulld.sock"

// ExitError carries an exit code (the container's, for run and exec).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ErrDaemonNotRunning: nothing answers at the address.
var ErrDaemonNotRunning = errors.New("hulld is not running")

type globals struct {
	namespace, address, format string
	conn                       *grpc.ClientConn
	stdout, stderr             io.Writer
	stdin                      io.Reader
}

// New builds the root command.
func New() *cobra.Command {
	g := &globals{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}
	root := &cobra.Command{
		Use:           "hull",
		Short:         "Hull: run containers under the runtime each deserves (CLI of hulld)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	ns := os.Getenv("HULL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	addr := os.Getenv("HULL_ADDRESS")
	if addr == "" {
		addr = DefaultAddress
	}
	root.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", ns, "namespace ($HULL_NAMESPACE)")
	root.PersistentFlags().StringVar(&g.address, "address", addr, "hulld's socket ($HULL_ADDRESS)")
	root.PersistentFlags().StringVar(&g.format, "format", "table", "output format: table or json")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if g.format != "table" && g.format != "json" {
			return fmt.Errorf("--format %q: want table or json", g.format)
		}
		return nil
	}
	root.AddCommand(nsCmd(g), imagesCmd(g), infoCmd(g), runCmd(g), containersCmd(g), tasksCmd(g),
		execCmd(g), attachCmd(g), logsCmd(g), stopCmd(g), eventsCmd(g), publishCmd(g), networkCmd(g))
	return root
}

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	root := New()
	root.SetArgs(args)
	err := root.Execute()
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "hull: %v\n", err)
	return 1
}

// client connects to hulld (once per command).
func (g *globals) client() (*grpc.ClientConn, error) {
	if g.conn != nil {
		return g.conn, nil
	}
	notRunning := func(why string) error {
		return fmt.Errorf("%w at %s (%s): start it with `hulld --address %s` (as root), or point --address/$HULL_ADDRESS at a running one", ErrDaemonNotRunning, g.address, why, g.address)
	}
	c, err := net.Dial("unix", g.address)
	if err != nil {
		var why string
		switch {
		case errors.Is(err, os.ErrNotExist):
			why = "no socket"
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("cannot connect to hulld at %s: permission denied (the socket is root only)", g.address)
		default:
			why = strings.TrimPrefix(err.Error(), "dial unix "+g.address+": ")
		}
		return nil, notRunning(why)
	}
	c.Close()
	ns := g.namespace
	conn, err := grpc.NewClient("unix://"+g.address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return fromRPC(invoker(metadata.AppendToOutgoingContext(ctx, "hull-namespace", ns), method, req, reply, cc, opts...))
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(metadata.AppendToOutgoingContext(ctx, "hull-namespace", ns), desc, cc, method, opts...)
			return s, fromRPC(err)
		}),
	)
	if err != nil {
		return nil, err
	}
	g.conn = conn
	return conn, nil
}

// fromRPC turns a gRPC status back into an errdefs kind with the daemon's
// message.
func fromRPC(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable && strings.Contains(s.Message(), "connect") {
		return fmt.Errorf("%w: %s", ErrDaemonNotRunning, s.Message())
	}
	return errgrpc.ToNative(err)
}

func (g *globals) table() *tabwriter.Writer {
	return tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
}

// printJSON prints protobuf messages (or anything) as JSON.
func (g *globals) printJSON(v any) error {
	if m, ok := v.(proto.Message); ok {
		// protojson varies its spacing on purpose: re-indent for stable output.
		data, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		v = json.RawMessage(data)
	}
	if ms, ok := v.([]proto.Message); ok {
		var raw []json.RawMessage
		for _, m := range ms {
			data, err := protojson.Marshal(m)
			if err != nil {
				return err
			}
			raw = append(raw, data)
		}
		if raw == nil {
			raw = []json.RawMessage{}
		}
		v = raw
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (g *globals) json() bool { return g.format == "json" }

func namespaces(g *globals) (hullv1.NamespacesClient, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	return hullv1.NewNamespacesClient(c), nil
}

func images(g *globals) (hullv1.ImagesClient, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	return hullv1.NewImagesClient(c), nil
}

func containers(g *globals) (hullv1.ContainersClient, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	return hullv1.NewContainersClient(c), nil
}

func tasks(g *globals) (hullv1.TasksClient, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	return hullv1.NewTasksClient(c), nil
}

func networks(g *globals) (hullv1.NetworksClient, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	return hullv1.NewNetworksClient(c), nil
}
