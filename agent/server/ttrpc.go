package server

import (
	"context"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"

	agentapi "github.com/hullproject/hull/agent/api"
)

// NewTTRPCServer returns a ttrpc server serving svc. Errors cross the wire
// as gRPC statuses by errdefs kind (errgrpc), so the host's agent.Client
// gets errdefs.ErrNotFound & co. back.
func NewTTRPCServer(svc agentapi.AgentService) (*ttrpc.Server, error) {
	s, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(
		func(ctx context.Context, um ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
			Mark(info.FullMethod)
			r, err := m(ctx, um)
			Mark(info.FullMethod + " done")
			if err != nil {
				return nil, errgrpc.ToGRPC(err)
			}
			return r, nil
		}))
	if err != nil {
		return nil, err
	}
	agentapi.RegisterAgentService(s, svc)
	return s, nil
}
