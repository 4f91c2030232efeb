package bench

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/shim"
)

// BenchmarkVMGuestSteps is a cold `hull run --rm --runtime vm --net none
// busybox /bin/true` through a real hulld, printing one merged timeline of
// the shim's events and the guest's own steps (the agent's Trace: kernel
// boot markers, the agent's start and PID-1 setup, each RPC, the steps of
// CreateContainer and StartContainer), medians in ms from the CLI's start.
// The guest's CLOCK_MONOTONIC is put on the host's clock by the readiness
// check: the agent answering Version is when the shim saw it ready. Lines
// marked "guest idle" are gaps in which the guest waited for the host.
// HULL_BENCH_VM_NET=1 runs with the default network instead of --net none.
// Run: go test -p 1 -run '^$' -bench VMGuestSteps -benchtime 5x ./bench/
func BenchmarkVMGuestSteps(b *testing.B) {
	b.Setenv(shim.VMTraceGuestEnv, "1") // the agent's steps, at the price of a Trace RPC before each Delete
	e := vmSetup(b, "")
	at := map[string][]time.Duration{}
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("gsteps%d", i)
		var flags []string
		if os.Getenv("HULL_BENCH_VM_NET") == "" {
			flags = []string{"--net", "none"}
		}
		_, start, t := e.runTrue(b, "vm", id, flags...)
		if t == nil || len(t.Guest) == 0 {
			b.Fatalf("no guest trace for %s (an agent without the Trace RPC?)", id)
		}
		var versionDone int64
		for _, g := range t.Guest {
			if strings.HasSuffix(g.Name, "/Version done") && versionDone == 0 {
				versionDone = g.MonoNs
			}
		}
		ready, ok := t.Events["agent_ready"]
		if versionDone == 0 || !ok {
			b.Fatalf("trace of %s: no readiness to align the guest's clock", id)
		}
		off := ready - versionDone // host ns = guest ns + off
		for ev, ns := range t.Events {
			at["host: "+ev] = append(at["host: "+ev], time.Duration(ns-start.UnixNano()))
		}
		seen := map[string]int{}
		for _, g := range t.Guest {
			name := g.Name
			if n := seen[g.Name]; n > 0 {
				name = fmt.Sprintf("%s #%d", g.Name, n+1)
			}
			seen[g.Name]++
			at["guest: "+name] = append(at["guest: "+name], time.Duration(g.MonoNs+off-start.UnixNano()))
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	names := make([]string, 0, len(at))
	for n := range at {
		names = append(names, n)
	}
	sort.SliceStable(names, func(i, j int) bool { return med(at[names[i]]) < med(at[names[j]]) })
	fmt.Printf("== cold `hull run --rm --runtime vm busybox /bin/true` (%s): host and guest steps (%d runs, medians, ms from the CLI's start) ==\n", map[bool]string{true: "--net none", false: "default network"}[os.Getenv("HULL_BENCH_VM_NET") == ""], b.N)
	var prev time.Duration
	for _, n := range names {
		m := med(at[n])
		note := ""
		// A guest RPC that began well after the previous step: either
		// the host had not sent it yet, or it was sent (see the shim's
		// *_sent marks) and waited behind other guest work on the one
		// vCPU (the agent's warm-ups); the timeline tells which.
		if strings.HasPrefix(n, "guest: /") && !strings.HasSuffix(n, " done") && m-prev > 5*time.Millisecond {
			note = "   (gap before it: host not sent yet, or queued behind guest work)"
		}
		fmt.Printf("  %8.1f  +%6.1f  %s%s\n", vmMs(m), vmMs(m-prev), n, note)
		prev = m
	}
	b.ReportMetric(0, "ns/op")
}
