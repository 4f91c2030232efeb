package guest

import (
	"errors"
	"strings"
	"testing"
)

func fakeTree() *ModuleTree {
	return &ModuleTree{
		Dir: "/fake",
		Path: map[string]string{
			"virtio_ring": "kernel/drivers/virtio/virtio_ring.ko",
			"virtio":      "kernel/drivers/virtio/virtio.ko",
			"virtio_mmio": "kernel/drivers/virtio/virtio_mmio.ko",
			"failover":    "kernel/net/core/failover.ko",
			"net_fo":      "kernel/drivers/net/net_failover.ko",
			"virtio_net":  "kernel/drivers/net/virtio_net.ko",
			"broken":      "kernel/broken.ko",
		},
		Deps: map[string][]string{
			"virtio":      {"virtio_ring"},
			"virtio_mmio": {"virtio", "virtio_ring"},
			"net_fo":      {"failover"},
			"virtio_net":  {"net_fo", "virtio", "virtio_ring"},
			"broken":      {"gone"},
		},
	}
}

func TestModuleOrder(t *testing.T) {
	tr := fakeTree()
	for _, tc := range []struct {
		ask, want []string
		err       string
	}{
		{[]string{"virtio_mmio"}, []string{"virtio_ring", "virtio", "virtio_mmio"}, ""},
		{[]string{"virtio_net", "virtio-mmio"}, []string{"failover", "net_fo", "virtio_ring", "virtio", "virtio_net", "virtio_mmio"}, ""},
		{[]string{"nope"}, nil, "nope in /fake"},
		{[]string{"broken"}, nil, "gone (needed by broken)"},
	} {
		got, err := tr.Order(tc.ask)
		if tc.err != "" {
			if !errors.Is(err, ErrModuleMissing) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Order(%v) err = %v, want ErrModuleMissing naming %q", tc.ask, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Order(%v) = %v, %v; want %v", tc.ask, got, err, tc.want)
		}
	}
}

func TestModulesDepFormat(t *testing.T) {
	tr := fakeTree()
	delete(tr.Path, "broken")
	dep := string(tr.ModulesDep())
	want := "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n"
	if !strings.Contains(dep, want) {
		t.Errorf("modules.dep lacks %q:\n%s", want, dep)
	}
	if !strings.Contains(dep, "kernel/drivers/virtio/virtio_ring.ko:\n") {
		t.Errorf("modules.dep lacks a line for a module without deps:\n%s", dep)
	}
}
