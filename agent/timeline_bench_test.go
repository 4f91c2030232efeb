package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/qemu"
	"github.com/hullproject/hull/vm/vmtest"
)

// BenchmarkVMGuestTimeline boots the agent's guest (Hull's kernel, TCG, 1
// vCPU, 256 MiB, rootfs over virtio-fs), runs /bin/true with the daemon's
// default spec (oci.DefaultSpec: default seccomp profile and capabilities;
// no network namespace and a cgroup namespace, as the shim sends it) in the
// order the shim does (ConfigureNetwork with only lo, CreateContainer,
// StartContainer, WaitProcess, RemoveContainer), then asks the agent for its Trace, and
// prints where the guest's time went: each step's median time after the
// kernel ran /init and after the previous step. HULL_VM_APPEND adds kernel
// parameters (HULL_TRACE=1 makes the runtime print its own phases on the
// console, GODEBUG=inittrace=1 the agent's package inits).
func BenchmarkVMGuestTimeline(b *testing.B) {
	testutil.RequireRoot(b)
	kernel := vmtest.Kernel(b)
	rd := vmtest.Initramfs(b)
	bundle := testutil.NewBundle(b, "/bin/true")
	ctx := context.Background()
	steps := map[string][]time.Duration{}
	var order []string
	host := map[string][]time.Duration{}
	add := func(m map[string][]time.Duration, k string, d time.Duration) { m[k] = append(m[k], d) }
	for i := 0; i < b.N; i++ {
		cfg := vm.Config{ID: "timeline", StateDir: b.TempDir(), Kernel: kernel, Initrd: rd, VCPUs: 1, MemoryMiB: 256,
			Shares: []vm.Share{{Tag: shareTag, Source: bundle.Dir}}, KernelParams: os.Getenv("HULL_VM_APPEND")}
		sb, err := vm.Boot(ctx, qemu.New(qemu.Options{Accel: "tcg"}), cfg, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		c := sb.Agent
		add(host, "boot → agent answered", sb.Ready.Sub(sb.StartedAt))
		t := time.Now()
		lap := func(name string) {
			now := time.Now()
			add(host, name, now.Sub(t))
			t = now
		}
		if _, err := c.ConfigureNetwork(ctx, &agentapi.ConfigureNetworkRequest{}); err != nil {
			b.Fatal(err)
		}
		lap("ConfigureNetwork (lo)")
		if _, err := c.CreateContainer(ctx, defaultSpecReq(b, "tl")); err != nil {
			b.Fatal(err)
		}
		lap("CreateContainer")
		if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "tl"}); err != nil {
			b.Fatal(err)
		}
		lap("StartContainer")
		w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "tl"})
		if err != nil || w.Status != 0 {
			b.Fatalf("wait: %v status %d", err, w.GetStatus())
		}
		lap("WaitProcess (exit seen)")
		// QEMU's CPU time so far (vCPU and I/O threads): the guest's work,
		// less sensitive to the host's load than the guest's clock, which
		// under TCG follows the host's.
		if cpu, err := procCPU(sb.Hypervisor.Pid()); err == nil {
			add(host, "QEMU CPU time, boot to exit", cpu)
		}
		if i == b.N-1 && strings.Contains(cfg.KernelParams, "HULL_TRACE=1") {
			// The container init's own phases went to its stderr.
			buf, wg := collect(ctx, c.ReadStderr, "tl", "")
			wg.Wait()
			fmt.Printf("== the container init's trace (stderr) ==\n%s\n", buf)
		}
		if _, err := c.RemoveContainer(ctx, &agentapi.ContainerRequest{ContainerId: "tl"}); err != nil {
			b.Fatal(err)
		}
		lap("RemoveContainer")
		tr, err := c.Trace(ctx, &agentapi.Empty{})
		if err != nil {
			b.Fatal(err)
		}
		var t0 int64
		for _, e := range tr.Kernel {
			if strings.HasPrefix(e.Name, "kernel: Run /") {
				t0 = e.MonoNs
			}
		}
		all := append(slices.Clone(tr.Kernel), tr.Events...)
		sort.SliceStable(all, func(i, j int) bool { return all[i].MonoNs < all[j].MonoNs })
		seen := map[string]int{}
		for _, e := range all {
			// Repeated names (the same RPC twice) get a number.
			name := e.Name
			if n := seen[e.Name]; n > 0 {
				name = fmt.Sprintf("%s #%d", e.Name, n+1)
			}
			seen[e.Name]++
			if _, ok := steps[name]; !ok {
				order = append(order, name)
			}
			steps[name] = append(steps[name], time.Duration(e.MonoNs-t0))
		}
		if i == b.N-1 && strings.Contains(cfg.KernelParams, "=") {
			if con, err := os.ReadFile(sb.Hypervisor.ConsolePath()); err == nil {
				fmt.Printf("== console of the last guest ==\n%s\n", con)
			}
		}
		if err := sb.Shutdown(ctx, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		vmtest.NoStrays(b)
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	// Order the steps by their median time.
	sort.SliceStable(order, func(i, j int) bool { return med(steps[order[i]]) < med(steps[order[j]]) })
	fmt.Printf("== guest timeline (%d boots, medians, ms after the kernel ran /init; guest CLOCK_MONOTONIC) ==\n", b.N)
	var prev time.Duration
	for _, name := range order {
		m := med(steps[name])
		fmt.Printf("  %8.1f  +%6.1f  %s (%d)\n", ms(m), ms(m-prev), name, len(steps[name]))
		prev = m
	}
	fmt.Printf("== host side (medians, ms) ==\n")
	for _, name := range []string{"boot → agent answered", "ConfigureNetwork (lo)", "CreateContainer", "StartContainer", "WaitProcess (exit seen)", "RemoveContainer", "QEMU CPU time, boot to exit"} {
		fmt.Printf("  %8.1f  %s\n", ms(med(host[name])), name)
	}
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// defaultSpecReq is a CreateContainerRequest for /bin/true with the
// daemon's default spec, shaped as the shim's guestSpec sends it.
func defaultSpecReq(b testing.TB, id string) *agentapi.CreateContainerRequest {
	b.Helper()
	spec := oci.DefaultSpec("default", id)
	spec.Process.Args = []string{"/bin/true"}
	spec.Root.Path = guestShare + "/rootfs"
	var nss []specs.LinuxNamespace
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type != specs.NetworkNamespace {
			nss = append(nss, ns)
		}
	}
	spec.Linux.Namespaces = append(nss, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	spec.Linux.CgroupsPath = ""
	js, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	return &agentapi.CreateContainerRequest{
		ContainerId: id, OciSpec: js,
		Storages: []*agentapi.Storage{{Source: shareTag, Fstype: "virtiofs", MountPoint: guestShare}},
	}
}

// procCPU is the user+system CPU time of process pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// utime and stime are fields 14 and 15 (f[11], f[12]), in clock ticks.
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
