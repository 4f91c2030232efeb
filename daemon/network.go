package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/config"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/network"
	"github.com/hullproject/hull/oci"
)

// How containers reach the network (package network does the CNI part):
//
//   - a named network (the default one unless the container names
//     another): at task create the container's attachment (a network
//     namespace with its interface, IP and published ports) is made, and
//     the spec joins that namespace by path. The attachment goes when the
//     init process ends, when the task is deleted or its create fails, when
//     the container is removed, and, for what a crash left, when hulld
//     starts.
//   - "none": a new network namespace with only lo, brought up by hulld
//     once the init is in it (native; a VM guest brings up its own).
//   - "host": the host's network namespace (native runtimes only: a VM
//     cannot share it).
//
// resolv.conf, hosts and hostname are written per task and bind-mounted
// at /etc (native), or written into the container's rootfs (vm, whose
// guest sees only the rootfs), unless the container mounts those paths
// itself.

// etcFiles are the files written for a container's network.
var etcFiles = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/hostname"}

// netID is a container's attachment key.
func netID(ns, id string) string { return ns + "/" + id }

// isVM reports whether a runtime runs its containers in VMs.
func isVM(rt config.Runtime) bool {
	mode, _ := rt.Options["mode"].(string)
	return mode == "vm"
}

// errVMHostNetwork: --net host with the vm runtime.
func errVMHostNetwork(runtime string) error {
	return fmt.Errorf("runtime %q: the vm runtime cannot share the host network namespace (use a network, or --net none): %w", runtime, errdefs.ErrInvalidArgument)
}

// netConfig is a container's network as asked at create: the mode or
// network name (the default filled in), the published ports, and the spec
// options that follow from them.
func (d *Daemon) netConfig(ctx context.Context, id, rtName string, rt config.Runtime, c *hullv1.ContainerConfig) (string, []network.PortMapping, []oci.SpecOpt, error) {
	name := c.GetNetwork()
	if name == "" {
		name = d.cfg.Network.DefaultNetwork
	}
	ports, err := portsFromAPI(c.GetPorts())
	if err != nil {
		return "", nil, nil, err
	}
	var opts []oci.SpecOpt
	switch name {
	case network.Host:
		if isVM(rt) {
			return "", nil, nil, errVMHostNetwork(rtName)
		}
		if len(ports) > 0 {
			return "", nil, nil, fmt.Errorf("ports published with --net host: the container uses the host's ports directly, publishing needs a network: %w", network.ErrInvalidPort)
		}
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	case network.None:
		if len(ports) > 0 {
			return "", nil, nil, fmt.Errorf("ports published with --net none: a container without a network has nothing to publish: %w", network.ErrInvalidPort)
		}
	default:
		if _, err := d.net.Get(ctx, name); err != nil {
			return "", nil, nil, err
		}
	}
	if name != network.Host && c.GetHostname() == "" {
		// Its own UTS namespace: named after the container, as Docker does.
		opts = append(opts, oci.WithHostname(hostnameFor(id)))
	}
	return name, ports, opts, nil
}

// hostnameFor is the default hostname of container id (at most 63 bytes,
// a DNS label's limit).
func hostnameFor(id string) string {
	if len(id) > 63 {
		id = id[:63]
	}
	return id
}

// portsFromAPI checks the API's port mappings: ports 1-65535, tcp or udp
// (tcp when empty), an IP address or nothing for the host side, and no host
// port given twice.
func portsFromAPI(in []*hullv1.PortMapping) ([]network.PortMapping, error) {
	var out []network.PortMapping
	type key struct {
		port  uint32
		proto string
	}
	seen := map[key][]string{}
	for _, p := range in {
		desc := fmt.Sprintf("%s:%d:%d/%s", p.GetHostIp(), p.GetHostPort(), p.GetContainerPort(), p.GetProtocol())
		proto := strings.ToLower(p.GetProtocol())
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("port %s: protocol %q: want tcp or udp: %w", desc, p.GetProtocol(), network.ErrInvalidPort)
		}
		for _, n := range []struct {
			what string
			v    uint32
		}{{"host port", p.GetHostPort()}, {"container port", p.GetContainerPort()}} {
			if n.v < 1 || n.v > 65535 {
				return nil, fmt.Errorf("port %s: %s %d: want 1-65535: %w", desc, n.what, n.v, network.ErrInvalidPort)
			}
		}
		hostIP := p.GetHostIp()
		if hostIP != "" {
			// The networks are IPv4; 0.0.0.0 is all addresses, as "".
			a, err := netip.ParseAddr(hostIP)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("port %s: host IP %q is not an IPv4 address: %w", desc, hostIP, network.ErrInvalidPort)
			}
			hostIP = a.String()
			if a.IsUnspecified() {
				hostIP = ""
			}
		}
		k := key{p.GetHostPort(), proto}
		for _, ip := range seen[k] {
			if ip == hostIP || ip == "" || hostIP == "" {
				return nil, fmt.Errorf("port %s: host port %d/%s is published twice: %w", desc, k.port, proto, network.ErrInvalidPort)
			}
		}
		seen[k] = append(seen[k], hostIP)
		out = append(out, network.PortMapping{HostIP: hostIP, HostPort: uint16(p.GetHostPort()), ContainerPort: uint16(p.GetContainerPort()), Protocol: proto})
	}
	return out, nil
}

func portsToAPI(in []network.PortMapping) []*hullv1.PortMapping {
	var out []*hullv1.PortMapping
	for _, p := range in {
		out = append(out, &hullv1.PortMapping{HostIp: p.HostIP, HostPort: uint32(p.HostPort), ContainerPort: uint32(p.ContainerPort), Protocol: p.Protocol})
	}
	return out
}

// containerNetwork is a record's network mode; records made before
// networking joined a new, empty network namespace ("none").
func containerNetwork(c Container) string {
	if c.Network == "" {
		return network.None
	}
	return c.Network
}

// setupNetwork attaches a task's container to its network and makes spec
// use it: the network namespace, and resolv.conf, hosts and hostname
// (written under bundle for native runtimes, into the rootfs for vm ones).
// On error nothing is left attached.
func (ts *tasks) setupNetwork(ctx context.Context, ns string, c Container, rt config.Runtime, spec *specs.Spec, bundle string, rootfs []mount.Mount) (err error) {
	mode := containerNetwork(c)
	vm := isVM(rt)
	var att *network.Attachment
	switch mode {
	case network.Host:
		if vm {
			return errVMHostNetwork(c.Runtime)
		}
		if err := oci.ApplyOpts(spec, oci.WithHostNamespace(specs.NetworkNamespace)); err != nil {
			return err
		}
	case network.None:
		// A new namespace; its lo is brought up once the init is in it
		// (loopbackUp).
		if err := oci.ApplyOpts(spec, oci.WithNamespacePath(specs.NetworkNamespace, "")); err != nil {
			return err
		}
	default:
		att, err = ts.attach(ctx, ns, c, spec, mode, c.Ports)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				ts.detach(ns, c.ID)
			}
		}()
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	paths, err := network.EtcFiles(filepath.Join(bundle, "etc"), att, hostname, mode)
	if err != nil {
		return fmt.Errorf("container %q: resolv.conf, hosts, hostname: %w", c.ID, err)
	}
	files := map[string]string{"/etc/resolv.conf": paths.ResolvConf, "/etc/hosts": paths.Hosts, "/etc/hostname": paths.Hostname}
	for _, m := range spec.Mounts {
		delete(files, path.Clean(m.Destination)) // the user's own mount wins
	}
	if vm {
		return writeEtcFiles(rootfs, files)
	}
	for _, dst := range etcFiles {
		if src := files[dst]; src != "" {
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}})
		}
	}
	return nil
}

// loopbackUp brings up lo in the network namespace of process pid (the
// created init of a --net none container): runtimes leave a new
// namespace's lo down, and programs talk to themselves over 127.0.0.1.
// (A VM's guest brings its own lo up.)
func loopbackUp(pid uint32) error {
	nsh, err := netns.GetFromPid(int(pid))
	if err != nil {
		return fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("netlink in the network namespace of pid %d: %w", pid, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

// attach makes the attachment of container c to network name and points
// the spec's network namespace at it.
func (ts *tasks) attach(ctx context.Context, ns string, c Container, spec *specs.Spec, name string, ports []network.PortMapping) (*network.Attachment, error) {
	t0 := time.Now()
	a, err := ts.d.net.Attach(ctx, network.AttachOptions{ID: netID(ns, c.ID), Network: name, Ports: ports, Hostname: spec.Hostname})
	if err != nil {
		return nil, fmt.Errorf("container %q: network %q: %w", c.ID, name, err)
	}
	slog.Debug("network attach", "id", c.ID, "network", name, "ips", a.IPs, "took", time.Since(t0))
	if err := oci.ApplyOpts(spec, oci.WithNamespacePath(specs.NetworkNamespace, a.NetNS)); err != nil {
		ts.detach(ns, c.ID)
		return nil, err
	}
	return a, nil
}

// writeEtcFiles copies files (destination in the container → file on the
// host) into the rootfs that mounts make, replacing what the image has
// there (a symlink included) without following links out of it.
func writeEtcFiles(rootfs []mount.Mount, files map[string]string) error {
	return mount.WithTempMount(rootfs, func(dir string) error {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return err
		}
		defer root.Close()
		for _, dst := range etcFiles {
			src := files[dst]
			if src == "" {
				continue
			}
			data, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			rel := strings.TrimPrefix(dst, "/")
			if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
				return fmt.Errorf("rootfs %s: %w", path.Dir(dst), err)
			}
			if fi, err := root.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
				if err := root.Remove(rel); err != nil {
					return fmt.Errorf("rootfs %s: %w", dst, err)
				}
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rootfs %s: %w", dst, err)
			}
			if err := root.WriteFile(rel, data, 0o644); err != nil {
				return fmt.Errorf("rootfs %s: %w", dst, err)
			}
		}
		return nil
	})
}

// detach removes a container's network attachment, if it has one. A
// failure is logged: the attachment stays recorded, and a later end of the
// task, the container's delete or the next hulld start tries again.
func (ts *tasks) detach(ns, id string) error {
	return ts.d.detach(netID(ns, id))
}

// detach runs the Detach of attachment id, again after a pause when it
// fails: a plugin's iptables call can lose a race with another process's
// (iptables-nft answers EBUSY), and CNI DEL is meant to be repeated.
func (d *Daemon) detach(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	for i, pause := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 0} {
		if err = d.net.Detach(ctx, id); err == nil {
			if i > 0 {
				slog.Info("network detach succeeded on a retry", "attachment", id, "try", i+1)
			}
			return nil
		}
		slog.Warn("network detach", "attachment", id, "try", i+1, "err", err)
		if pause == 0 {
			break
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return err
		}
	}
	return err
}

// detachTask detaches a task's container once, however many of its ends
// (exit, delete, failed create) ask for it; a caller waits for one in
// progress, and tries again if that failed.
func (ts *tasks) detachTask(t *task) {
	t.netMu.Lock()
	defer t.netMu.Unlock()
	if !t.netDone && ts.detach(t.ns, t.id) == nil {
		t.netDone = true
	}
}

// sweepNetwork detaches attachments that no live task uses (their task
// ended or its create was cut off while hulld was down).
func (ts *tasks) sweepNetwork() {
	atts, err := ts.d.net.Attachments()
	if err != nil {
		slog.Warn("network sweep", "err", err)
		return
	}
	for _, a := range atts {
		ns, id, _ := strings.Cut(a.ID, "/")
		if t, err := ts.get(ns, id); err == nil {
			if _, st, _, _ := t.init.snapshot(); st != StatusStopped {
				continue
			}
		}
		slog.Info("network sweep: detaching", "attachment", a.ID, "network", a.Network)
		_ = ts.d.detach(a.ID)
	}
}

// ---- the Networks service ----

type networksSvc struct {
	hullv1.UnimplementedNetworksServer
	d *Daemon
}

func apiNetwork(n network.Network) *hullv1.Network {
	return &hullv1.Network{Name: n.Name, Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway, Plugins: n.Plugins, Default: n.Default, File: n.File}
}

func (s *networksSvc) List(ctx context.Context, _ *hullv1.Empty) (*hullv1.ListNetworksResponse, error) {
	nets, err := s.d.net.List(ctx)
	if err != nil {
		return nil, err
	}
	out := &hullv1.ListNetworksResponse{}
	for _, n := range nets {
		out.Networks = append(out.Networks, apiNetwork(n))
	}
	return out, nil
}

func (s *networksSvc) Create(ctx context.Context, r *hullv1.CreateNetworkRequest) (*hullv1.Network, error) {
	switch r.Name {
	case network.None, network.Host:
		return nil, fmt.Errorf("network name %q is reserved (--net %s needs no network): %w", r.Name, r.Name, errdefs.ErrInvalidArgument)
	}
	n, err := s.d.net.Create(ctx, network.CreateOptions{Name: r.Name, Subnet: r.Subnet, Gateway: r.Gateway, Bridge: r.Bridge})
	if err != nil {
		return nil, err
	}
	return apiNetwork(n), nil
}

func (s *networksSvc) Remove(ctx context.Context, r *hullv1.RemoveNetworkRequest) (*hullv1.Empty, error) {
	// Containers that name it would fail at their next start: refuse, as
	// Docker does, until they are removed.
	users, err := s.d.store.usersOf(r.Name)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		slices.Sort(users)
		return nil, fmt.Errorf("network %q is used by container(s) %s: remove them first: %w", r.Name, strings.Join(users, ", "), network.ErrNetworkInUse)
	}
	if err := s.d.net.Remove(ctx, r.Name); err != nil {
		return nil, err
	}
	return &hullv1.Empty{}, nil
}
