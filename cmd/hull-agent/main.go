// Command hull-agent is the agent of Hull's guests: PID 1 in the VM, it
// serves the agent API (package agent) on the virtio-serial port and runs
// containers with the native runtime code. It re-executes itself as
// `hull-agent init` for each container's init, like hull-runtime.
//
// Built static with cgo (mk/vm.mk): runtime/nsenter's constructor and
// libseccomp (runtime/seccomp compiles profiles in the guest) need it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/hullproject/hull/agent"
	"github.com/hullproject/hull/agent/seccompcache"
	"github.com/hullproject/hull/agent/server"
	"github.com/hullproject/hull/runtime/container"
	"github.com/hullproject/hull/runtime/initproc"
	_ "github.com/hullproject/hull/runtime/nsenter" // joins namespaces before the Go runtime starts
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		initproc.Main()
	}
	server.MarkAt("libc started (before the Go runtime)", processStartNs())
	server.Mark("main")
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stderr
	}
	// Every console byte is an emulated UART write under TCG: only
	// warnings by default; HULL_AGENT_LOG=info|debug on the kernel
	// command line (the kernel passes it to /init's environment) for more.
	// The runtime code logs through slog.Default, so it is set too.
	level := slog.LevelWarn
	if v := os.Getenv("HULL_AGENT_LOG"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	log := slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	log = log.With("component", "hull-agent")
	if err := run(log); err != nil {
		fmt.Fprintf(console, "hull-agent: %v\n", err)
	}
	if os.Getpid() == 1 {
		// PID 1 must not exit: power off (panic=-1 ends the VM anyway).
		_ = server.PowerOff()
		select {}
	}
	os.Exit(1)
}

func run(log *slog.Logger) error {
	if os.Getpid() == 1 {
		n, err := server.LoadModules()
		if err != nil {
			return err
		}
		server.Mark("modules loaded")
		// Modules are loaded from the initramfs, then it is left for a
		// tmpfs root that pivot_root can leave.
		if err := server.SwitchRoot(); err != nil {
			return fmt.Errorf("switch root: %w", err)
		}
		server.Mark("root switched")
		if err := server.MountKernelFS(); err != nil {
			return err
		}
		server.Mark("kernel filesystems mounted")
		// The default profile compiled at build time: the runtime finds
		// it in its cache instead of compiling it with libseccomp.
		if _, err := seccompcache.Install(container.SeccompCacheDir); err != nil {
			log.Warn("seccomp cache", "err", err)
		}
		log.Debug("pid 1 ready", "modules", n)
	}
	reaper := &server.Reaper{}
	stop := make(chan struct{})
	defer close(stop)
	go reaper.Run(stop)

	powerOff := func() {
		if err := server.PowerOff(); err != nil {
			log.Error("power off", "err", err)
		}
	}
	if os.Getpid() == 1 {
		// QEMU's system_powerdown (the hypervisor's clean stop when the
		// agent was not asked first) presses the ACPI power button.
		server.WatchPowerButton(context.Background(), func() {
			log.Info("power button pressed: powering off")
			powerOff()
		})
	}
	srv, err := server.NewTTRPCServer(server.NewServer(reaper, powerOff, log))
	if err != nil {
		return err
	}
	return server.ServeAgent(context.Background(), srv, agent.PortName, log)
}
