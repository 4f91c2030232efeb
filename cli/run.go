package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/network"
)

type runFlags struct {
	rm, detach, tty, interactive, privileged, readOnly bool
	runtime, user, hostname, cwd, memory, network      string
	env, mounts, capAdd, capDrop, labels, publish      []string
	cpus                                               float64
	pids                                               int64
}

// parseSize reads 64m, 1g, 512k or bytes.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	t := strings.ToLower(strings.TrimSuffix(strings.ToLower(s), "b"))
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, strings.TrimSuffix(t, "k")
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, strings.TrimSuffix(t, "m")
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, strings.TrimSuffix(t, "g")
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--memory %q: want a positive size such as 64m or 1g", s)
	}
	return n * mult, nil
}

// parseMount reads type=bind,src=/a,dst=/b,options=ro:rbind (ctr's form).
func parseMount(s string) (*hullv1.Mount, error) {
	m := &hullv1.Mount{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--mount %q: %q is not key=value", s, kv)
		}
		switch k {
		case "type":
			m.Type = v
		case "src", "source":
			m.Source = v
		case "dst", "destination", "target":
			m.Destination = v
		case "options":
			m.Options = strings.Split(v, ":")
		default:
			return nil, fmt.Errorf("--mount %q: unknown key %q (want type, src, dst, options)", s, k)
		}
	}
	if m.Destination == "" || !strings.HasPrefix(m.Destination, "/") {
		return nil, fmt.Errorf("--mount %q: dst must be an absolute path", s)
	}
	return m, nil
}

func parseLabels(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, l := range list {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", l)
		}
		out[k] = v
	}
	return out, nil
}

// parsePublish reads the -p flags, before anything is created.
func parsePublish(netName string, publish []string) ([]*hullv1.PortMapping, error) {
	if len(publish) == 0 {
		return nil, nil
	}
	switch netName {
	case network.None, network.Host:
		return nil, fmt.Errorf("-p %s: publishing ports needs a network, not --net %s", publish[0], netName)
	}
	pms, err := network.ParsePorts(publish)
	if err != nil {
		return nil, fmt.Errorf("-p: %w", err)
	}
	var out []*hullv1.PortMapping
	for _, p := range pms {
		out = append(out, &hullv1.PortMapping{HostIp: p.HostIP, HostPort: uint32(p.HostPort), ContainerPort: uint32(p.ContainerPort), Protocol: p.Protocol})
	}
	return out, nil
}

// portsString shows published ports as docker ps does:
// 0.0.0.0:8080->80/tcp, ...
func portsString(ps []*hullv1.PortMapping) string {
	var out []string
	for _, p := range ps {
		out = append(out, network.PortMapping{HostIP: p.HostIp, HostPort: uint16(p.HostPort), ContainerPort: uint16(p.ContainerPort), Protocol: p.Protocol}.String())
	}
	return strings.Join(out, ", ")
}

func runCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:               "run [flags] IMAGE ID [CMD [ARG...]]",
		Short:             "Create and run a container; the exit status is the container's",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeImages(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runContainer(cmd.Context(), g, &f, args[0], args[1], args[2:])
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.detach, "detach", "d", false, "start and return")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fl.StringVar(&f.runtime, "runtime", "", "runtime name from hulld's config (default: its default_runtime)")
	fl.StringArrayVar(&f.env, "env", nil, "set an environment variable KEY=VALUE")
	fl.StringArrayVar(&f.mounts, "mount", nil, "add a mount: type=bind,src=/host,dst=/ctr,options=rbind:ro")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit (e.g. 0.5)")
	fl.StringVar(&f.memory, "memory", "", "memory limit (e.g. 64m)")
	fl.Int64Var(&f.pids, "pids-limit", 0, "maximum number of processes")
	fl.BoolVar(&f.privileged, "privileged", false, "all capabilities, all devices, no seccomp")
	fl.StringVarP(&f.user, "user", "u", "", "uid[:gid]")
	fl.StringVar(&f.cwd, "cwd", "", "working directory")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "add a capability")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a capability (ALL for all)")
	fl.BoolVar(&f.readOnly, "read-only", false, "read-only root filesystem")
	fl.StringVar(&f.hostname, "hostname", "", "container hostname")
	fl.StringArrayVar(&f.labels, "label", nil, "container label KEY=VALUE")
	fl.StringVar(&f.network, "net", "", "network: none, host or a network's name (default: hulld's default network)")
	fl.StringVar(&f.network, "network", "", "same as --net")
	_ = fl.MarkHidden("network")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a container port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp] (repeatable)")
	return cmd
}

func runContainer(ctx context.Context, g *globals, f *runFlags, img, id string, args []string) (err error) {
	if f.rm && f.detach {
		return fmt.Errorf("--rm and --detach together: a detached container is removed with `hull rm`")
	}
	if f.cpus < 0 {
		return fmt.Errorf("--cpus %v: must be positive", f.cpus)
	}
	if f.pids < 0 {
		return fmt.Errorf("--pids-limit %d: must be positive", f.pids)
	}
	mem, err := parseSize(f.memory)
	if err != nil {
		return err
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	ports, err := parsePublish(f.network, f.publish)
	if err != nil {
		return err
	}
	cfg := &hullv1.ContainerConfig{
		Process: &hullv1.ProcessConfig{Args: args, Env: f.env, User: f.user, Cwd: f.cwd, Tty: f.tty, Stdin: f.interactive},
		Cpus:    f.cpus, Memory: mem, PidsLimit: f.pids, Privileged: f.privileged,
		CapAdd: f.capAdd, CapDrop: f.capDrop, ReadOnly: f.readOnly, Hostname: f.hostname,
		Network: f.network, Ports: ports,
	}
	for _, m := range f.mounts {
		pm, err := parseMount(m)
		if err != nil {
			return err
		}
		cfg.Mounts = append(cfg.Mounts, pm)
	}
	cc, err := containers(g)
	if err != nil {
		return err
	}
	tc, err := tasks(g)
	if err != nil {
		return err
	}
	tr := newTracer()
	defer tr.step("done")
	if _, err := cc.Create(ctx, &hullv1.CreateContainerRequest{Id: id, Image: img, Runtime: f.runtime, Labels: labels, Config: cfg}); err != nil {
		return err
	}
	// A run that fails before the container starts leaves nothing.
	started := false
	defer func() {
		if (err != nil && !started) || f.rm {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if _, derr := cc.Delete(cctx, &hullv1.DeleteContainerRequest{Id: id, Force: true}); derr != nil && err == nil {
				err = derr
			}
		}
	}()
	tr.step("container created")
	if _, err := tc.Create(ctx, &hullv1.TaskRequest{Id: id}); err != nil {
		return err
	}
	tr.step("task created")
	if f.detach {
		if _, err := tc.Start(ctx, &hullv1.TaskRequest{Id: id}); err != nil {
			return err
		}
		started = true
		fmt.Fprintln(g.stdout, id)
		return nil
	}
	a, err := attach(ctx, g, tc, id, "")
	if err != nil {
		return err
	}
	tr.step("attached")
	if _, err := tc.Start(ctx, &hullv1.TaskRequest{Id: id}); err != nil {
		a.cancel()
		return err
	}
	tr.step("started")
	started = true
	code, err := a.run(ctx, f.interactive, f.tty)
	tr.step("exited")
	if err != nil {
		return err
	}
	// With --rm the deferred forced container delete removes the task too.
	return exitErr(code)
}
