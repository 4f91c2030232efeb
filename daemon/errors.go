package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	hmeta "github.com/hullproject/hull/metadata"
)

// NamespaceHeader is the gRPC metadata key naming the namespace of a call.
const NamespaceHeader = "hull-namespace"

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$`)

func validateID(what, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%s id %q: must be 1-76 letters, digits, '_', '.' or '-', starting with a letter or digit: %w", what, id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// namespaceOf is the namespace of an incoming call.
func namespaceOf(ctx context.Context) (string, error) {
	ns := hmeta.DefaultNamespace
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(NamespaceHeader); len(v) > 0 && v[0] != "" {
			ns = v[0]
		}
	}
	if err := hmeta.ValidateNamespace(ns); err != nil {
		return "", err
	}
	return ns, nil
}

// unaryErrors maps errdefs kinds to gRPC codes.
func unaryErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	slog.Debug("call", "method", info.FullMethod, "took", time.Since(start), "err", err)
	return resp, errgrpc.ToGRPC(err)
}

func streamErrors(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return errgrpc.ToGRPC(h(srv, ss))
}
