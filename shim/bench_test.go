package shim_test

import (
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkCtrRunRm times `ctr run --rm IMAGE ID true` under one private
// containerd 1.6: through containerd's runc shim (containerd-shim-runc-v2)
// driving runc, through this shim driving runc, and through this shim
// driving hull-runtime where it is built. The cases are interleaved in each
// round, so load on the machine falls on all of them alike; each reports
// its median in ms.
//
//	go test -run '^$' -bench CtrRunRm -benchtime 20x ./shim/
func BenchmarkCtrRunRm(b *testing.B) {
	c := startContainerd(b)
	type tc struct {
		name  string
		args  []string
		times []time.Duration
	}
	cases := []*tc{{name: "runc-shim+runc", args: []string{"--runtime", "io.containerd.runc.v2"}}}
	rts := runtimes(b)
	for _, name := range []string{"runc", "hull-runtime"} {
		if bin, ok := rts[name]; ok {
			cases = append(cases, &tc{name: "hull-shim+" + name, args: []string{"--runtime", runtimeType, "--runtime-config-path", c.runtimeConfig(b, bin)}})
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, k := range cases {
			id := c.newID(b)
			args := append([]string{"run", "--rm"}, k.args...)
			args = append(args, imageRef, id, "true")
			start := time.Now()
			if out, err := c.ctr(args...); err != nil {
				b.Fatalf("%s: run: %v %s", k.name, err, out)
			}
			k.times = append(k.times, time.Since(start))
		}
	}
	b.StopTimer()
	var summary []string
	for _, k := range cases {
		sort.Slice(k.times, func(i, j int) bool { return k.times[i] < k.times[j] })
		med := float64(k.times[len(k.times)/2].Microseconds()) / 1000
		b.ReportMetric(med, k.name+"-median-ms")
		summary = append(summary, k.name+" "+k.times[len(k.times)/2].Round(time.Millisecond).String())
	}
	b.Logf("ctr run --rm true, medians: %s", strings.Join(summary, ", "))
}
