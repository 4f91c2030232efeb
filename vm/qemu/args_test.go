package qemu

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/accel"
)

func TestBuildArgs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       vm.Config
		want, not []string
	}{
		{"microvm plain", vm.Config{StateDir: "/s", Kernel: "/k", Initrd: "/i", MemoryMiB: 128, VCPUs: 2},
			[]string{"-M microvm -accel tcg", "-m 128 -smp 2", "-initrd /i", "virtio-serial-device,id=vser0",
				"name=hull.agent", "-global virtio-mmio.force-legacy=false", "-serial chardev:con0",
				"file,id=con0,path=/s/console.log", "-qmp unix:/s/qmp.sock,server=on,wait=off", "-no-reboot",
				"-device virtio-balloon-device,free-page-reporting=on"},
			[]string{"memory-backend", "vhost-user-fs"}},
		{"microvm shares", vm.Config{StateDir: "/s", Kernel: "/k", Shares: []vm.Share{{Tag: "root", Source: "/r"}}},
			[]string{"-M microvm,memory-backend=mem", "memory-backend-memfd,id=mem,size=256M,share=on",
				"socket,id=fs0,path=/s/fs0.sock", "vhost-user-fs-device,chardev=fs0,tag=root"},
			[]string{"-initrd"}},
		{"disks", vm.Config{StateDir: "/s", Kernel: "/k", Disks: []vm.Disk{{Path: "/a.img", ReadOnly: true}, {Path: "/b.img"}}},
			[]string{"-drive file=/a.img,if=none,id=disk0,format=raw,readonly=on -device virtio-blk-device,drive=disk0",
				"-drive file=/b.img,if=none,id=disk1,format=raw -device virtio-blk-device,drive=disk1"},
			[]string{"disk1,format=raw,readonly"}},
		{"q35 for hotplug", vm.Config{StateDir: "/s", Kernel: "/k", Hotplug: true, Shares: []vm.Share{{Tag: "root", Source: "/r"}}},
			[]string{"-M q35,memory-backend=mem", "virtio-serial-pci,id=vser0", "vhost-user-fs-pci,chardev=fs0,tag=root",
				"-device virtio-balloon-pci,free-page-reporting=on"},
			[]string{"force-legacy", "virtio-serial-device", "balloon-device"}},
		{"microvm nics: taps as fds 3, 4", vm.Config{StateDir: "/s", Kernel: "/k", NetDevices: []vm.NetDevice{{MAC: "02:00:00:00:00:01"}, {MAC: "02:00:00:00:00:02"}}},
			[]string{"-netdev tap,id=net0,fd=3 -device virtio-net-device,netdev=net0,mac=02:00:00:00:00:01",
				"-netdev tap,id=net1,fd=4 -device virtio-net-device,netdev=net1,mac=02:00:00:00:00:02"},
			[]string{"virtio-net-pci", "romfile"}},
		{"q35 nic", vm.Config{StateDir: "/s", Kernel: "/k", Hotplug: true, NetDevices: []vm.NetDevice{{MAC: "02:00:00:00:00:01"}}},
			[]string{"-netdev tap,id=net0,fd=3 -device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,romfile="},
			[]string{"virtio-net-device"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(buildArgs(&tc.cfg, "tcg", pathsFor(&tc.cfg)), " ")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("args lack %q:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("args have %q:\n%s", n, got)
				}
			}
		})
	}
}

func TestAccelArg(t *testing.T) {
	for _, tc := range []struct {
		accel string
		tb    int
		want  string
	}{
		{"tcg", 0, "tcg,tb-size=" + strconv.Itoa(accel.DefaultTBSizeMiB)},
		{"tcg", 32, "tcg,tb-size=32"},
		{"tcg", -1, "tcg"},
		{"tcg,tb-size=8", 32, "tcg,tb-size=8"},
		{"kvm", 32, "kvm"},
	} {
		q := New(Options{Accel: tc.accel, TBSizeMiB: tc.tb})
		if got := q.accelArg(context.Background()); got != tc.want {
			t.Errorf("Accel %q TBSizeMiB %d: %q, want %q", tc.accel, tc.tb, got, tc.want)
		}
	}
}
