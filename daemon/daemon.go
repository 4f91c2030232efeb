package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/config"
	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/image"
	"github.com/hullproject/hull/metadata"
	"github.com/hullproject/hull/network"
	"github.com/hullproject/hull/snapshot/auto"
)

// Daemon is hulld.
type Daemon struct {
	cfg    *config.Config
	meta   *metadata.DB
	images *image.Service
	store  *store
	events *exchange
	tasks  *tasks
	net    *network.Manager

	lock   *os.File
	cancel context.CancelFunc

	// bg tracks background work (snapshot removal) Close waits for.
	bg sync.WaitGroup
}

func (d *Daemon) background(fn func()) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn()
	}()
}

// Options tune New.
type Options struct {
	// Publisher is the -publish-binary given to shims ("" for none).
	Publisher string
}

// ErrRunning: another hulld serves the same root or address.
var ErrRunning = fmt.Errorf("hulld already running: %w", errdefs.ErrUnavailable)

// New opens the daemon's stores under cfg.Root and reconnects to the
// shims of the tasks a previous hulld left under cfg.State.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *Daemon, err error) {
	for _, dir := range []string{cfg.Root, cfg.State, filepath.Dir(cfg.Address)} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
	}
	d := &Daemon{cfg: cfg, events: newExchange()}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.lock, err = os.OpenFile(filepath.Join(cfg.Root, "hulld.lock"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, fmt.Errorf("root %s is locked by another hulld: %w", cfg.Root, ErrRunning)
	}
	cs, err := content.Open(filepath.Join(cfg.Root, "content"))
	if err != nil {
		return nil, err
	}
	if d.meta, err = metadata.Open(filepath.Join(cfg.Root, "meta.db")); err != nil {
		return nil, err
	}
	sn, snName, err := auto.New(filepath.Join(cfg.Root, "snapshots"), cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("snapshotter: %w", err)
	}
	d.images = &image.Service{Content: cs, Meta: d.meta, Snapshotter: sn, SnapshotterName: snName, Applier: image.DiffApplier{}, Registry: cfg.Registry}
	if d.store, err = openStore(filepath.Join(cfg.Root, "containers.db")); err != nil {
		return nil, err
	}
	d.sweepSnapshots(ctx)
	nc := cfg.Network
	if d.net, err = network.New(network.Config{ConfDir: nc.ConfDir, PluginDirs: nc.PluginDirs, StateDir: cfg.NetworkStateDir(),
		DefaultSubnet: nc.Subnet, DefaultBridge: nc.Bridge, DefaultName: nc.DefaultNetwork}); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	tctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.tasks = &tasks{d: d, ctx: tctx, m: map[string]*task{}, creating: map[string]bool{}, closing: map[string]chan struct{}{},
		launcher: &shimLauncher{address: cfg.Address, ttrpc: cfg.Address + ".ttrpc", publisher: o.Publisher}}
	return d, nil
}

// Config is the daemon's configuration.
func (d *Daemon) Config() *config.Config { return d.cfg }

// Close stops the daemon's part; running containers and their shims stay.
func (d *Daemon) Close() error {
	if d.cancel != nil {
		d.cancel()
	}
	if d.tasks != nil {
		d.tasks.closeAll()
	}
	d.bg.Wait()
	var errs []error
	if d.store != nil {
		errs = append(errs, d.store.close())
	}
	if d.images != nil && d.images.Snapshotter != nil {
		errs = append(errs, d.images.Snapshotter.Close())
	}
	if d.meta != nil {
		errs = append(errs, d.meta.Close())
	}
	if d.lock != nil {
		d.lock.Close()
	}
	return errors.Join(errs...)
}

// listenUnix listens on path, root only (0600), refusing to take over the
// socket of a live daemon.
func listenUnix(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s answers: %w", path, ErrRunning)
	}
	_ = os.Remove(path)
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves the gRPC API on cfg.Address and the shims' event socket
// on cfg.Address+".ttrpc" until ctx ends. Tasks are restored first.
func (d *Daemon) Serve(ctx context.Context, ready func()) error {
	tl, err := listenUnix(d.tasks.launcher.ttrpc)
	if err != nil {
		return err
	}
	defer os.Remove(d.tasks.launcher.ttrpc)
	ts, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	eventsapi.RegisterEventsService(ts, forward{d.events})
	go func() { _ = ts.Serve(context.Background(), tl) }()
	defer ts.Close()

	d.tasks.restore(ctx)
	d.tasks.sweepNetwork()

	gl, err := listenUnix(d.cfg.Address)
	if err != nil {
		return err
	}
	defer os.Remove(d.cfg.Address)
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(unaryErrors), grpc.ChainStreamInterceptor(streamErrors))
	hullv1.RegisterNamespacesServer(gs, &namespacesSvc{d: d})
	hullv1.RegisterImagesServer(gs, &imagesSvc{d: d})
	hullv1.RegisterContainersServer(gs, &containersSvc{d: d})
	hullv1.RegisterTasksServer(gs, &tasksSvc{d: d})
	hullv1.RegisterEventsServer(gs, &eventsSvc{d: d})
	hullv1.RegisterSystemServer(gs, &systemSvc{d: d})
	hullv1.RegisterNetworksServer(gs, &networksSvc{d: d})
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(gl) }()
	slog.Info("hulld serving", "address", d.cfg.Address, "root", d.cfg.Root, "state", d.cfg.State, "snapshotter", d.images.SnapshotterName)
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			gs.Stop()
		}
		return nil
	case err := <-errc:
		return err
	}
}
