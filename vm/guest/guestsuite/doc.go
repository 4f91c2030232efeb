// Package guestsuite is the guest test suite of issue #7: tests that run
// inside a VM booted from Hull's guest kernel (the vm runtime's default
// kernel file, microvm, TCG here), so that the native-runtime features that
// need cgroup v2 and the kernel's other container features are tested even
// on a cgroup v1 or hybrid host.
//
// TestGuestSuite (host side) builds the test binaries of runtime/cgroups
// and of this package plus a static hull-runtime, puts them with busybox in
// an initramfs, attaches an ext4 disk holding a small busybox rootfs, boots
// the guest and reads every verdict back from the serial console. Inside
// the guest (HULL_GUEST_SUITE_IN_VM set) this package's tests check:
//
//   - cgroup v2 with the cpu, cpuset, memory, pids, io controllers and the
//     freezer, used by the native runtime (runtime/cgroups' own tests, and
//     hull-runtime run/pause/resume of real containers);
//   - seccomp (the default profile in force in a container), all eight
//     namespaces, overlayfs over ext4, devpts, unix and inet sockets.
//
// TestGuestPowerdown checks ACPI power-off: QMP system_powerdown presses
// the ACPI power button and the guest (the test init) powers off, so the VM
// exits cleanly. `make test-guest` runs the suite with the kernel feature
// probes of vm/guest; `make test` runs it with everything else.
package guestsuite
