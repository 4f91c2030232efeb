package cgroups

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	lib "github.com/opencontainers/cgroups"
	devcfg "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestConvertRejects lists bad resources: each must fail with ErrInvalid and
// a message naming the config.json field.
func TestConvertRejects(t *testing.T) {
	tests := []struct {
		name   string
		res    specs.LinuxResources
		layout Layout
		field  string
	}{
		{"swap below memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(200)), Swap: ptr(int64(100))}}, Legacy, "memory.swap"},
		{"negative memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-5))}}, Legacy, "memory.limit"},
		{"reservation above limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100 << 20)), Reservation: ptr(int64(200 << 20))}}, Legacy, "memory.reservation"},
		{"swappiness", specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr(uint64(101))}}, Legacy, "memory.swappiness"},
		{"v2 swap without memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr(int64(100 << 20))}}, Unified, "memory.swap"},
		{"cpus syntax", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-"}}, Legacy, "cpu.cpus"},
		{"cpus reversed", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}, Legacy, "cpu.cpus"},
		{"cpus missing cpu", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0,4095"}}, Legacy, "cpu.cpus"},
		{"mems syntax", specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "zero"}}, Legacy, "cpu.mems"},
		{"shares", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(1))}}, Legacy, "cpu.shares"},
		{"period", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr(uint64(10))}}, Legacy, "cpu.period"},
		{"quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(10))}}, Legacy, "cpu.quota"},
		{"idle", specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(2))}}, Legacy, "cpu.idle"},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-2))}}, Legacy, "pids.limit"},
		{"blkio weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(5))}}, Legacy, "blockIO.weight"},
		{"blkio device", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: -1}}}}}, Legacy, "blockIO.throttleReadBpsDevice[0]"},
		{"blkio weight device", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{Weight: ptr(uint16(2000))}}}}, Legacy, "blockIO.weightDevice[0].weight"},
		{"hugepage size", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB"}}}, Legacy, "hugepageLimits[0].pageSize"},
		{"device type", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x", Access: "r"}}}, Legacy, "devices[0].type"},
		{"device access", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll, {Type: "c", Access: "rwx"}}}, Legacy, "devices[1].access"},
		{"device major", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Major: ptr(int64(-7))}}}, Legacy, "devices[0].major"},
		{"unified on v1", specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, Hybrid, "unified"},
		{"unified key", specs.LinuxResources{Unified: map[string]string{"../x": "1"}}, Unified, "unified"},
		{"interface name", specs.LinuxResources{Network: &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: ""}}}}, Legacy, "network.priorities[0].name"},
		{"rdma empty", specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_0": {}}}, Legacy, "rdma.mlx5_0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Convert(&tc.res, tc.layout)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Convert error = %v, want ErrInvalid", err)
			}
			if want := "linux.resources." + tc.field; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
}

// TestConvert checks the translation into the library's Resources.
func TestConvert(t *testing.T) {
	tests := []struct {
		name   string
		res    specs.LinuxResources
		layout Layout
		want   func(r *lib.Resources) any
		value  any
	}{
		{"nil devices are skipped", specs.LinuxResources{}, Legacy, func(r *lib.Resources) any { return r.SkipDevices }, true},
		{"device wildcard", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll}}, Legacy, func(r *lib.Resources) any { return *r.Devices[0] },
			devcfg.Rule{Type: devcfg.WildcardDevice, Major: devcfg.Wildcard, Minor: devcfg.Wildcard, Permissions: "rwm", Allow: false}},
		{"device char", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{devNull}}, Legacy, func(r *lib.Resources) any { return r.Devices[0].CgroupString() }, "c 1:3 rw"},
		{"memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(2 << 30)), Reservation: ptr(int64(1 << 29))}}, Legacy,
			func(r *lib.Resources) any { return [3]int64{r.Memory, r.MemorySwap, r.MemoryReservation} }, [3]int64{1 << 30, 2 << 30, 1 << 29}},
		{"memory unlimited", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(-1))}}, Unified,
			func(r *lib.Resources) any { return [2]int64{r.Memory, r.MemorySwap} }, [2]int64{-1, -1}},
		{"oom and check", specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: ptr(true), CheckBeforeUpdate: ptr(true)}}, Legacy,
			func(r *lib.Resources) any { return [2]bool{r.OomKillDisable, r.MemoryCheckBeforeUpdate} }, [2]bool{true, true}},
		{"cpu", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(1024)), Quota: ptr(int64(-1)), Period: ptr(uint64(100000)), RealtimeRuntime: ptr(int64(950)), RealtimePeriod: ptr(uint64(1000))}}, Legacy,
			func(r *lib.Resources) any {
				return [5]int64{int64(r.CpuShares), r.CpuQuota, int64(r.CpuPeriod), r.CpuRtRuntime, int64(r.CpuRtPeriod)}
			}, [5]int64{1024, -1, 100000, 950, 1000}},
		{"cpuset", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0", Mems: "0"}}, Legacy, func(r *lib.Resources) any { return r.CpusetCpus + "/" + r.CpusetMems }, "0/0"},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(9))}}, Legacy, func(r *lib.Resources) any { return *r.PidsLimit }, int64(9)},
		{"blkio", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(500)), WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8}, Weight: ptr(uint16(100))}}}}, Legacy,
			func(r *lib.Resources) any {
				return [2]string{itoa(int(r.BlkioWeight)), r.BlkioWeightDevice[0].WeightString()}
			}, [2]string{"500", "8:0 100"}},
		{"network", specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: ptr(uint32(0x100001)), Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}}}}, Legacy,
			func(r *lib.Resources) any {
				return [2]string{itoa(int(r.NetClsClassid)), r.NetPrioIfpriomap[0].CgroupString()}
			}, [2]string{"1048577", "eth0 5"}},
		{"unified", specs.LinuxResources{Unified: map[string]string{"memory.high": "1000000"}}, Unified, func(r *lib.Resources) any { return r.Unified["memory.high"] }, "1000000"},
		{"rdma", specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_1": {HcaHandles: ptr(uint32(3))}}}, Legacy, func(r *lib.Resources) any { return *r.Rdma["mlx5_1"].HcaHandles }, uint32(3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, err := Convert(&tc.res, tc.layout)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.want(r); !reflect.DeepEqual(got, tc.value) {
				t.Errorf("got %#v, want %#v", got, tc.value)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		bad  bool
	}{
		{"0", []int{0}, false},
		{"0-2,5", []int{0, 1, 2, 5}, false},
		{"1,1", []int{1, 1}, false},
		{"", nil, true},
		{"a", nil, true},
		{"2-1", nil, true},
		{"-1", nil, true},
		{"0-99999999", nil, true},
	}
	for _, tc := range tests {
		got, err := parseList(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("parseList(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestMerge checks update semantics without touching cgroups.
func TestMerge(t *testing.T) {
	base := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{denyAll, devNull},
		Memory:  &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(200))},
		CPU:     &specs.LinuxCPU{Shares: ptr(uint64(512)), Cpus: "0"},
		BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1},
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 2},
		}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1}},
		Unified:        map[string]string{"a.b": "1"},
	}
	before, _ := json.Marshal(base)
	tests := []struct {
		name  string
		upd   *specs.LinuxResources
		check func(r *specs.LinuxResources) bool
	}{
		{"nil keeps all", nil, func(r *specs.LinuxResources) bool { return *r.Memory.Limit == 100 && len(r.Devices) == 2 }},
		{"memory limit only", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(150))}}, func(r *specs.LinuxResources) bool {
			return *r.Memory.Limit == 150 && *r.Memory.Swap == 200 && *r.CPU.Shares == 512
		}},
		{"cpus string", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "1"}}, func(r *specs.LinuxResources) bool { return r.CPU.Cpus == "1" && *r.CPU.Shares == 512 }},
		{"throttle per device", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 9},
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 32}, Rate: 3},
		}}}, func(r *specs.LinuxResources) bool {
			d := r.BlockIO.ThrottleReadBpsDevice
			return len(d) == 3 && d[0].Rate == 1 && d[1].Rate == 9 && d[2].Rate == 3
		}},
		{"hugepages per size", &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 5}, {Pagesize: "1GB", Limit: 6}}}, func(r *specs.LinuxResources) bool {
			return len(r.HugepageLimits) == 2 && r.HugepageLimits[0].Limit == 5
		}},
		{"devices replace", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{allowAll}}, func(r *specs.LinuxResources) bool { return len(r.Devices) == 1 && r.Devices[0].Allow }},
		{"unified per key", &specs.LinuxResources{Unified: map[string]string{"c.d": "2"}}, func(r *specs.LinuxResources) bool { return len(r.Unified) == 2 }},
		{"pids added", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(3))}}, func(r *specs.LinuxResources) bool { return *r.Pids.Limit == 3 && *r.Memory.Limit == 100 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Merge(base, tc.upd); !tc.check(got) {
				b, _ := json.Marshal(got)
				t.Errorf("Merge = %s", b)
			}
			if after, _ := json.Marshal(base); string(after) != string(before) {
				t.Errorf("Merge modified its base: %s", after)
			}
		})
	}
	if got := Merge(nil, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2))}}); *got.CPU.Shares != 2 {
		t.Error("Merge onto nil base lost the update")
	}
}

func TestContainerResources(t *testing.T) {
	fuse := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(10)), Minor: ptr(int64(229)), Access: "rwm"}
	tests := []struct {
		name  string
		spec  *specs.Spec
		first []specs.LinuxDeviceCgroup // the rules before the defaults
	}{
		{"no rules: deny-all first", &specs.Spec{Linux: &specs.Linux{}}, []specs.LinuxDeviceCgroup{denyAll}},
		{"nil spec", nil, []specs.LinuxDeviceCgroup{denyAll}},
		// linux.devices opens nothing by itself, as with runc and crun
		{"a device node gets no implicit rule", &specs.Spec{Linux: &specs.Linux{
			Devices:   []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}},
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll}},
		}}, []specs.LinuxDeviceCgroup{denyAll}},
		{"spec rules kept in order", &specs.Spec{Linux: &specs.Linux{
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll, fuse}, Memory: &specs.LinuxMemory{Limit: ptr(int64(5))}},
		}}, []specs.LinuxDeviceCgroup{denyAll, fuse}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if tc.spec != nil {
				before, _ = json.Marshal(tc.spec)
			}
			r := ContainerResources(tc.spec)
			want := append(slices.Clone(tc.first), DefaultDeviceRules()...)
			if !reflect.DeepEqual(r.Devices, want) {
				got, _ := json.Marshal(r.Devices)
				t.Errorf("rules = %s", got)
			}
			if tc.spec != nil {
				if after, _ := json.Marshal(tc.spec); string(after) != string(before) {
					t.Error("spec modified")
				}
			}
			if _, _, err := Convert(r, Legacy); err != nil {
				t.Error(err)
			}
		})
	}
	if got := DeviceAllowRules([]specs.LinuxDevice{{Type: "c", Major: 10, Minor: 229}, {Type: "p"}, {Type: "u", Major: 1, Minor: 2}}); len(got) != 2 || got[1].Type != "c" {
		t.Errorf("DeviceAllowRules = %+v", got)
	}
}

func TestFeatures(t *testing.T) {
	f := Features()
	if !*f.V1 || !*f.V2 || *f.Systemd || *f.SystemdUser || !*f.Rdma {
		t.Errorf("Features() = v1 %v v2 %v systemd %v user %v rdma %v", *f.V1, *f.V2, *f.Systemd, *f.SystemdUser, *f.Rdma)
	}
	// what it claims is what Convert takes
	if _, _, err := Convert(&specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx4_0": {HcaObjects: ptr(uint32(1))}}}, Unified); err != nil {
		t.Errorf("rdma: %v", err)
	}
}
