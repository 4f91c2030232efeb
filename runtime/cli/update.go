package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/container"
)

func newUpdate(g *globals) *cobra.Command {
	var resources string
	cmd := &cobra.Command{
		Use:   "update [flags] <container-id>",
		Short: "change a container's resource limits",
		Args:  exactArgs(1, "container id"),
	}
	f := cmd.Flags()
	f.StringVarP(&resources, "resources", "r", "", "JSON file with linux.resources (- for stdin)")
	blkio := f.Uint16("blkio-weight", 0, "block IO weight (10-1000)")
	cpuPeriod := f.String("cpu-period", "", "CPU CFS period (µs)")
	cpuQuota := f.String("cpu-quota", "", "CPU CFS quota (µs)")
	cpuShares := f.String("cpu-shares", "", "CPU shares")
	rtPeriod := f.String("cpu-rt-period", "", "CPU realtime period (µs)")
	rtRuntime := f.String("cpu-rt-runtime", "", "CPU realtime runtime (µs)")
	cpus := f.String("cpuset-cpus", "", "CPUs allowed")
	mems := f.String("cpuset-mems", "", "memory nodes allowed")
	memory := f.String("memory", "", "memory limit (bytes)")
	memRes := f.String("memory-reservation", "", "memory soft limit (bytes)")
	memSwap := f.String("memory-swap", "", "memory+swap limit (bytes)")
	pids := f.Int64("pids-limit", 0, "maximum number of processes")
	f.String("kernel-memory", "", "ignored (removed from the kernel)")
	f.String("kernel-memory-tcp", "", "ignored")
	f.String("l3-cache-schema", "", "not supported")
	f.String("mem-bw-schema", "", "not supported")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		r := &specs.LinuxResources{}
		if resources != "" {
			var in io.Reader = os.Stdin
			if resources != "-" {
				fh, err := os.Open(resources)
				if err != nil {
					return fmt.Errorf("--resources: %w", err)
				}
				defer fh.Close()
				in = fh
			}
			if err := json.NewDecoder(in).Decode(r); err != nil {
				return fmt.Errorf("--resources: %w", err)
			}
		}
		changed := func(n string) bool { return f.Changed(n) }
		if changed("l3-cache-schema") || changed("mem-bw-schema") {
			return fmt.Errorf("intelRdt: %w", container.ErrNotSupported)
		}
		u64 := func(name string, s string, dst **uint64) error {
			if !changed(name) {
				return nil
			}
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return fmt.Errorf("--%s %q: %w", name, s, err)
			}
			*dst = &v
			return nil
		}
		i64 := func(name string, s string, dst **int64) error {
			if !changed(name) {
				return nil
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("--%s %q: %w", name, s, err)
			}
			*dst = &v
			return nil
		}
		if changed("cpu-period") || changed("cpu-quota") || changed("cpu-shares") || changed("cpu-rt-period") ||
			changed("cpu-rt-runtime") || changed("cpuset-cpus") || changed("cpuset-mems") {
			if r.CPU == nil {
				r.CPU = &specs.LinuxCPU{}
			}
			for _, e := range []error{
				u64("cpu-period", *cpuPeriod, &r.CPU.Period), i64("cpu-quota", *cpuQuota, &r.CPU.Quota),
				u64("cpu-shares", *cpuShares, &r.CPU.Shares), u64("cpu-rt-period", *rtPeriod, &r.CPU.RealtimePeriod),
				i64("cpu-rt-runtime", *rtRuntime, &r.CPU.RealtimeRuntime),
			} {
				if e != nil {
					return e
				}
			}
			if changed("cpuset-cpus") {
				r.CPU.Cpus = *cpus
			}
			if changed("cpuset-mems") {
				r.CPU.Mems = *mems
			}
		}
		if changed("memory") || changed("memory-reservation") || changed("memory-swap") {
			if r.Memory == nil {
				r.Memory = &specs.LinuxMemory{}
			}
			for _, e := range []error{
				i64("memory", *memory, &r.Memory.Limit), i64("memory-reservation", *memRes, &r.Memory.Reservation),
				i64("memory-swap", *memSwap, &r.Memory.Swap),
			} {
				if e != nil {
					return e
				}
			}
		}
		if changed("pids-limit") {
			r.Pids = &specs.LinuxPids{Limit: pids}
		}
		if changed("blkio-weight") {
			if r.BlockIO == nil {
				r.BlockIO = &specs.LinuxBlockIO{}
			}
			r.BlockIO.Weight = blkio
		}
		return container.Update(g.root, args[0], r)
	}
	return cmd
}
