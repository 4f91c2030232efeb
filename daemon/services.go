package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/config"
	"github.com/hullproject/hull/image"
	"github.com/hullproject/hull/version"
)

// ---- namespaces ----

type namespacesSvc struct {
	hullv1.UnimplementedNamespacesServer
	d *Daemon
}

func (s *namespacesSvc) Create(ctx context.Context, r *hullv1.NamespaceRequest) (*hullv1.Empty, error) {
	return &hullv1.Empty{}, s.d.meta.CreateNamespace(r.Name)
}

func (s *namespacesSvc) List(ctx context.Context, _ *hullv1.Empty) (*hullv1.ListNamespacesResponse, error) {
	names, err := s.d.meta.Namespaces()
	return &hullv1.ListNamespacesResponse{Names: names}, err
}

func (s *namespacesSvc) Delete(ctx context.Context, r *hullv1.NamespaceRequest) (*hullv1.Empty, error) {
	if n := s.d.store.count(r.Name); n > 0 {
		return nil, fmt.Errorf("namespace %q has %d containers: %w", r.Name, n, errdefs.ErrFailedPrecondition)
	}
	return &hullv1.Empty{}, s.d.meta.DeleteNamespace(r.Name)
}

// ---- images ----

type imagesSvc struct {
	hullv1.UnimplementedImagesServer
	d *Daemon
}

func apiImage(img image.Image) *hullv1.Image {
	return &hullv1.Image{Name: img.Name, Digest: img.Target.Digest.String(), MediaType: img.Target.MediaType,
		Size: img.Target.Size, Labels: img.Labels, CreatedAt: timestamppb.New(img.CreatedAt)}
}

func (s *imagesSvc) Pull(r *hullv1.PullRequest, stream hullv1.Images_PullServer) error {
	ctx := stream.Context()
	ns, err := namespaceOf(ctx)
	if err != nil {
		return err
	}
	if err := s.d.meta.CreateNamespace(ns); err != nil {
		return err
	}
	img, err := s.d.images.Pull(ctx, ns, r.Ref, image.PullOptions{
		Platform: r.Platform, Unpack: !r.NoUnpack,
		Progress: func(p image.Progress) {
			lp := &hullv1.LayerProgress{Digest: p.Digest.String(), MediaType: p.MediaType, Status: string(p.Status), Offset: p.Offset, Total: p.Total}
			if p.Err != nil {
				lp.Error = p.Err.Error()
			}
			_ = stream.Send(&hullv1.PullResponse{Progress: lp})
		},
	})
	if err != nil {
		return err
	}
	return stream.Send(&hullv1.PullResponse{Image: apiImage(img)})
}

func (s *imagesSvc) List(ctx context.Context, _ *hullv1.Empty) (*hullv1.ListImagesResponse, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := s.d.images.List(ctx, ns)
	if err != nil {
		return nil, err
	}
	out := &hullv1.ListImagesResponse{}
	for _, i := range imgs {
		out.Images = append(out.Images, apiImage(i))
	}
	return out, nil
}

func (s *imagesSvc) Remove(ctx context.Context, r *hullv1.RemoveImageRequest) (*hullv1.Empty, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	return &hullv1.Empty{}, s.d.images.Remove(ctx, ns, r.Name, image.RemoveOptions{Sync: r.Sync})
}

func (s *imagesSvc) Tag(ctx context.Context, r *hullv1.TagImageRequest) (*hullv1.Image, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	img, err := s.d.images.Tag(ctx, ns, r.Source, r.Target)
	if err != nil {
		return nil, err
	}
	return apiImage(img), nil
}

func absPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path %q must be absolute (it is read on the daemon's host): %w", p, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *imagesSvc) Import(ctx context.Context, r *hullv1.ImportRequest) (*hullv1.ListImagesResponse, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := absPath(r.Path); err != nil {
		return nil, err
	}
	if err := s.d.meta.CreateNamespace(ns); err != nil {
		return nil, err
	}
	imgs, err := s.d.images.Import(ctx, ns, r.Path, image.ImportOptions{Name: r.Name, Unpack: !r.NoUnpack})
	if err != nil {
		return nil, err
	}
	out := &hullv1.ListImagesResponse{}
	for _, i := range imgs {
		out.Images = append(out.Images, apiImage(i))
	}
	return out, nil
}

func (s *imagesSvc) Export(ctx context.Context, r *hullv1.ExportRequest) (_ *hullv1.Empty, err error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := absPath(r.Path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(r.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := s.d.images.Export(ctx, ns, r.Names, f, image.ExportOptions{Platform: r.Platform}); err != nil {
		f.Close()
		os.Remove(r.Path)
		return nil, err
	}
	return &hullv1.Empty{}, f.Close()
}

func (s *imagesSvc) Prune(ctx context.Context, _ *hullv1.Empty) (*hullv1.PruneResponse, error) {
	st, err := s.d.images.Prune(ctx)
	if err != nil {
		return nil, err
	}
	return &hullv1.PruneResponse{Blobs: int64(st.Blobs), Bytes: st.Bytes, Snapshots: int64(st.Snapshots)}, nil
}

// ---- events ----

type eventsSvc struct {
	hullv1.UnimplementedEventsServer
	d *Daemon
}

func (s *eventsSvc) Subscribe(r *hullv1.SubscribeRequest, stream hullv1.Events_SubscribeServer) error {
	ctx := stream.Context()
	ns, err := namespaceOf(ctx)
	if err != nil {
		return err
	}
	ch, cancel := s.d.events.subscribe()
	defer cancel()
	want := map[string]bool{}
	for _, t := range r.Topics {
		want[t] = true
	}
	for {
		select {
		case ev := <-ch:
			if ev.Namespace != ns || (len(want) > 0 && !want[ev.Topic]) {
				continue
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *eventsSvc) Publish(ctx context.Context, r *hullv1.PublishRequest) (*hullv1.Empty, error) {
	var a anypb.Any
	if err := proto.Unmarshal(r.Event, &a); err != nil {
		return nil, fmt.Errorf("event: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	s.d.events.fromShim(&types.Envelope{Timestamp: timestamppb.Now(), Namespace: r.Namespace, Topic: r.Topic, Event: &a})
	return &hullv1.Empty{}, nil
}

// ---- system ----

type systemSvc struct {
	hullv1.UnimplementedSystemServer
	d *Daemon
}

func (s *systemSvc) Info(ctx context.Context, _ *hullv1.Empty) (*hullv1.InfoResponse, error) {
	cfg := s.d.cfg
	out := &hullv1.InfoResponse{Version: version.Version, Root: cfg.Root, State: cfg.State, Address: cfg.Address, Snapshotter: s.d.images.SnapshotterName}
	for _, name := range cfg.RuntimeNames() {
		out.Runtimes = append(out.Runtimes, runtimeInfo(name, cfg.Runtimes[name], name == cfg.DefaultRuntime))
	}
	return out, nil
}

// runtimeInfo says whether a runtime can run containers here, and why not.
func runtimeInfo(name string, rt config.Runtime, def bool) *hullv1.RuntimeInfo {
	ri := &hullv1.RuntimeInfo{Name: name, Type: rt.Type, Default: def}
	bin, err := config.ShimBinary(rt.Type)
	if err != nil {
		ri.Reason = err.Error()
		return ri
	}
	shim, err := findBinary(bin)
	if err != nil {
		ri.Reason = fmt.Sprintf("shim %s: not found next to hulld or on PATH", bin)
		return ri
	}
	ri.Shim = shim
	opt := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := rt.Options[k].(string); ok && v != "" {
				return v
			}
		}
		return ""
	}
	if mode := opt("mode"); mode != "" && mode != "native" {
		ri.Usable = true
		ri.Reason = fmt.Sprintf("mode %q: checked by the shim when a container is created", mode)
		vmInfo(context.Background(), ri, mode, rt.Options)
		return ri
	}
	runtime := opt("BinaryName", "binary_name")
	switch {
	case runtime == "" && rt.Type == "io.containerd.runc.v2":
		runtime = "runc"
	case runtime == "":
		runtime = "hull-runtime"
		if p := filepath.Join(filepath.Dir(shim), runtime); fileExec(p) {
			runtime = p
		}
	}
	p, err := exec.LookPath(runtime)
	if err != nil {
		ri.Reason = fmt.Sprintf("OCI runtime %s: not found (%v)", runtime, strings.TrimPrefix(err.Error(), "exec: "))
		return ri
	}
	ri.Binary = p
	// It must run, not only exist.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "--version").Output()
	if err != nil {
		ri.Reason = fmt.Sprintf("OCI runtime %s --version: %v", p, err)
		return ri
	}
	ri.Version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	ri.Usable = true
	return ri
}

func fileExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
