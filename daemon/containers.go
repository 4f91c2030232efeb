package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/metadata"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/network"
	"github.com/hullproject/hull/oci"
)

type containersSvc struct {
	hullv1.UnimplementedContainersServer
	d *Daemon
}

// snapshotKey names a container's rw snapshot: unique per container
// incarnation, so the snapshot of a removed container can go in the
// background while a new one of the same id is made.
func snapshotKey(ns, id string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return snapshotPrefix + ns + "/" + id + "/" + hex.EncodeToString(b)
}

const snapshotPrefix = "ctr/"

// specOpts turns a ContainerConfig into spec options, after the image's.
func specOpts(c *hullv1.ContainerConfig) ([]oci.SpecOpt, error) {
	var opts []oci.SpecOpt
	if c == nil {
		return nil, nil
	}
	p := c.GetProcess()
	if len(p.GetArgs()) > 0 {
		opts = append(opts, oci.WithProcessArgs(p.Args...))
	}
	if len(p.GetEnv()) > 0 {
		opts = append(opts, oci.WithEnv(p.Env))
	}
	if p.GetCwd() != "" {
		opts = append(opts, oci.WithCwd(p.Cwd))
	}
	if p.GetUser() != "" {
		opts = append(opts, oci.WithUser(p.User))
	}
	opts = append(opts, oci.WithTTY(p.GetTty()))
	if c.Privileged {
		opts = append(opts, oci.WithPrivileged)
	}
	if len(c.CapAdd) > 0 {
		opts = append(opts, oci.WithCapAdd(c.CapAdd...))
	}
	if len(c.CapDrop) > 0 {
		opts = append(opts, oci.WithCapDrop(c.CapDrop...))
	}
	if c.ReadOnly {
		opts = append(opts, oci.WithReadonlyRootfs(true))
	}
	if c.Hostname != "" {
		opts = append(opts, oci.WithHostname(c.Hostname))
	}
	if c.Memory != 0 {
		opts = append(opts, oci.WithMemoryLimit(c.Memory))
	}
	if c.Cpus != 0 {
		opts = append(opts, oci.WithCPUs(c.Cpus))
	}
	if c.PidsLimit != 0 {
		opts = append(opts, oci.WithPidsLimit(c.PidsLimit))
	}
	if len(c.Mounts) > 0 {
		var ms []specs.Mount
		for _, m := range c.Mounts {
			if m.Destination == "" {
				return nil, fmt.Errorf("mount: no destination: %w", errdefs.ErrInvalidArgument)
			}
			typ := m.Type
			if typ == "" {
				typ = "bind"
			}
			opt := m.Options
			if typ == "bind" && len(opt) == 0 {
				opt = []string{"rbind"}
			}
			if typ == "bind" {
				if _, err := os.Stat(m.Source); err != nil {
					return nil, fmt.Errorf("mount source %q: %v: %w", m.Source, err, errdefs.ErrInvalidArgument)
				}
			}
			ms = append(ms, specs.Mount{Type: typ, Source: m.Source, Destination: m.Destination, Options: opt})
		}
		opts = append(opts, oci.WithMounts(ms))
	}
	return opts, nil
}

func (s *containersSvc) Create(ctx context.Context, r *hullv1.CreateContainerRequest) (*hullv1.Container, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.d.createContainer(ctx, ns, r)
	if err != nil {
		return nil, err
	}
	return s.d.apiContainer(ns, c), nil
}

func (d *Daemon) createContainer(ctx context.Context, ns string, r *hullv1.CreateContainerRequest) (_ Container, err error) {
	if err := validateID("container", r.Id); err != nil {
		return Container{}, err
	}
	if r.Image == "" {
		return Container{}, fmt.Errorf("container %q: no image given: %w", r.Id, errdefs.ErrInvalidArgument)
	}
	rtName := r.Runtime
	if rtName == "" {
		rtName = d.cfg.DefaultRuntime
	}
	rt, _, err := d.tasks.runtime(rtName)
	if err != nil {
		return Container{}, err
	}
	if _, err := d.store.get(ns, r.Id); err == nil {
		return Container{}, fmt.Errorf("container %q in namespace %q: id already in use: %w", r.Id, ns, errdefs.ErrAlreadyExists)
	}
	img, err := d.images.Get(ctx, ns, r.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Container{}, fmt.Errorf("image %q is not present in namespace %q (pull it first: hull -n %s images pull %s): %w", r.Image, ns, ns, r.Image, errdefs.ErrNotFound)
		}
		return Container{}, err
	}
	_, icfg, _, err := d.images.Resolve(ctx, img.Target, "")
	if err != nil {
		return Container{}, fmt.Errorf("image %q: %w", img.Name, err)
	}
	more, err := specOpts(r.Config)
	if err != nil {
		return Container{}, err
	}
	netName, ports, netOpts, err := d.netConfig(ctx, r.Id, rtName, rt, r.Config)
	if err != nil {
		return Container{}, fmt.Errorf("container %q: %w", r.Id, err)
	}
	opts := append([]oci.SpecOpt{oci.WithImageConfig(icfg.Config)}, more...)
	opts = append(opts, netOpts...)
	// User names are looked up in the image's /etc/passwd: then the spec
	// is made once the rootfs snapshot exists, with it mounted.
	byName := userName(icfg.Config.User) || userName(r.GetConfig().GetProcess().GetUser())
	var specJSON []byte
	if !byName {
		if specJSON, err = makeSpec(ns, r.Id, opts); err != nil {
			return Container{}, err
		}
	}
	// An image unpacked before names its top layer in a label; unpack
	// only when that layer is missing.
	top := img.Labels["hull.io/unpacked."+d.images.SnapshotterName]
	if top != "" {
		if _, err := d.images.Snapshotter.Stat(ctx, top); err != nil {
			top = ""
		}
	}
	if top == "" {
		if top, err = d.images.Unpack(ctx, ns, img.Name, ""); err != nil {
			return Container{}, err
		}
	}
	key := snapshotKey(ns, r.Id)
	t0 := time.Now()
	d.meta.GCLock.RLock()
	var mounts []mount.Mount
	err = d.meta.AddSnapshot(ns, metadata.SnapshotRef{Key: key, Parent: top, Root: true})
	if err == nil {
		mounts, err = d.images.Snapshotter.Prepare(ctx, key, top)
		if err != nil {
			_ = d.meta.RemoveSnapshot(ns, key)
		}
	}
	d.meta.GCLock.RUnlock()
	if err != nil {
		return Container{}, fmt.Errorf("container %q: rootfs snapshot: %w", r.Id, err)
	}
	if byName {
		if specJSON, err = d.specWithRootfs(ns, r.Id, mounts, opts); err != nil {
			d.removeSnapshot(ctx, ns, key)
			return Container{}, err
		}
	}
	c := Container{ID: r.Id, Image: img.Name, Runtime: rtName, Labels: r.Labels, Spec: specJSON, SnapshotKey: key,
		Snapshotter: d.images.SnapshotterName, Stdin: r.GetConfig().GetProcess().GetStdin(), CreatedAt: time.Now().UTC(),
		Network: netName, Ports: ports}
	t1 := time.Now()
	if err := d.store.create(ns, c); err != nil {
		d.removeSnapshot(ctx, ns, key)
		return Container{}, err
	}
	slog.Debug("container create", "id", r.Id, "snapshot", t1.Sub(t0), "record", time.Since(t1))
	d.events.publish(&hullv1.Event{Namespace: ns, Topic: "/containers/create", ContainerId: r.Id})
	return c, nil
}

func (d *Daemon) removeSnapshot(ctx context.Context, ns, key string) error {
	err := d.images.Snapshotter.Remove(ctx, key)
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return d.meta.RemoveSnapshot(ns, key)
}

// apiContainer is a record as the API shows it, with the addresses of its
// network attachment while it has one.
func (d *Daemon) apiContainer(ns string, c Container) *hullv1.Container {
	out := &hullv1.Container{Id: c.ID, Image: c.Image, Runtime: c.Runtime, Labels: c.Labels, Spec: c.Spec,
		SnapshotKey: c.SnapshotKey, Snapshotter: c.Snapshotter, CreatedAt: timestamppb.New(c.CreatedAt),
		Network: containerNetwork(c), Ports: portsToAPI(c.Ports)}
	if out.Network == network.None || out.Network == network.Host {
		return out
	}
	if a, err := d.net.Attachment(netID(ns, c.ID)); err == nil {
		out.Ips = a.IPs
	}
	return out
}

func (s *containersSvc) Get(ctx context.Context, r *hullv1.ContainerRequest) (*hullv1.Container, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.d.store.get(ns, r.Id)
	if err != nil {
		return nil, err
	}
	return s.d.apiContainer(ns, c), nil
}

func (s *containersSvc) List(ctx context.Context, _ *hullv1.Empty) (*hullv1.ListContainersResponse, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.d.store.list(ns)
	if err != nil {
		return nil, err
	}
	out := &hullv1.ListContainersResponse{}
	for _, c := range cs {
		out.Containers = append(out.Containers, s.d.apiContainer(ns, c))
	}
	return out, nil
}

func (s *containersSvc) Delete(ctx context.Context, r *hullv1.DeleteContainerRequest) (*hullv1.Empty, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.d.store.get(ns, r.Id)
	if err != nil {
		return nil, err
	}
	var finishTask func()
	var freed <-chan struct{}
	if _, err := s.d.tasks.get(ns, r.Id); err == nil {
		if !r.Force {
			return nil, fmt.Errorf("container %q has a task: delete it first (hull tasks kill / hull stop), or force: %w", r.Id, errdefs.ErrFailedPrecondition)
		}
		// The task is stopped now; its shim, bundle and mounts go in the
		// background, before the rw snapshot; the answer waits until its
		// resources are gone (freed).
		if finishTask, freed, err = s.d.tasks.deleteLater(ctx, ns, r.Id); err != nil {
			return nil, err
		}
	} else {
		// No task: an attachment left by one that went while hulld was
		// down goes now, before the id can be used again.
		s.d.tasks.detach(ns, r.Id)
	}
	if err := s.d.store.delete(ns, r.Id); err != nil {
		return nil, err
	}
	if err := os.Remove(s.d.tasks.logPath(ns, r.Id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// The rw layer goes in the background (its key is this incarnation's
	// own); what a crash interrupts is swept at the next start.
	s.d.background(func() {
		if finishTask != nil {
			finishTask()
		}
		s.d.events.publish(&hullv1.Event{Namespace: ns, Topic: "/containers/delete", ContainerId: r.Id})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := s.d.removeSnapshot(ctx, ns, c.SnapshotKey); err != nil {
			slog.Warn("remove container snapshot", "ns", ns, "id", r.Id, "key", c.SnapshotKey, "err", err)
		}
	})
	if freed != nil {
		// When the answer comes, nothing of the container runs or holds a
		// port, an address or a mount (a VM included): `run --rm` twice
		// with the same -p works, and the host is clean.
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, fmt.Errorf("container %q: deleted, its task still being torn down: %w", r.Id, ctx.Err())
		}
	}
	return &hullv1.Empty{}, nil
}

// sweepSnapshots removes container rw snapshots no container record names
// (a daemon that stopped while removing one).
func (d *Daemon) sweepSnapshots(ctx context.Context) {
	nss, err := d.meta.Namespaces()
	if err != nil {
		return
	}
	for _, ns := range nss {
		refs, err := d.meta.ListSnapshots(ns)
		if err != nil {
			continue
		}
		cs, err := d.store.list(ns)
		if err != nil {
			continue
		}
		used := map[string]bool{}
		for _, c := range cs {
			used[c.SnapshotKey] = true
		}
		for _, r := range refs {
			if r.Root && strings.HasPrefix(r.Key, snapshotPrefix) && !used[r.Key] {
				if err := d.removeSnapshot(ctx, ns, r.Key); err != nil {
					slog.Warn("sweep container snapshot", "ns", ns, "key", r.Key, "err", err)
				}
			}
		}
	}
}

// userName reports whether a user spec ("u", "u:g") names a user or group
// rather than giving numbers.
func userName(u string) bool {
	if u == "" {
		return false
	}
	user, group, _ := strings.Cut(u, ":")
	for _, part := range []string{user, group} {
		if part == "" {
			continue
		}
		if _, err := strconv.ParseUint(part, 10, 32); err != nil {
			return true
		}
	}
	return false
}

func makeSpec(ns, id string, opts []oci.SpecOpt) ([]byte, error) {
	spec, err := oci.NewSpec(ns, id, opts...)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	return json.Marshal(spec)
}

// specWithRootfs makes the spec with the container's rootfs mounted on a
// scratch directory (for user and group names).
func (d *Daemon) specWithRootfs(ns, id string, ms []mount.Mount, opts []oci.SpecOpt) ([]byte, error) {
	dir, err := os.MkdirTemp(d.cfg.State, "rootfs-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	if err := mount.All(ms, dir); err != nil {
		return nil, fmt.Errorf("container %q: mount rootfs to look up users: %w", id, err)
	}
	defer mount.UnmountAll(dir, 0)
	all := append([]oci.SpecOpt{oci.WithRootFSPath(dir)}, opts...)
	return makeSpec(ns, id, append(all, oci.WithRootFSPath("rootfs")))
}
