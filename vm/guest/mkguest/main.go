// Command mkguest builds Hull's guest assets; mk/guest.mk runs it.
//
//	mkguest kernel    -out build/guest -fragment vm/guest/kernel.config [-patches vm/guest/patches]
//	mkguest cloud     -out build/guest/cloud
//	mkguest initramfs -init build/guest/testinit -out build/guest/testinit.cpio [-modules build/guest/cloud] [-gzip] [-version v]
//	                  (also writes <out>.json: the init's hash and Hull version, for `hull info`)
//	mkguest show      -dir build/guest   (both kernels, as `hull info` will show them)
//	mkguest accel     [-fresh]            (KVM or TCG, and why)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hullproject/hull/vm/accel"
	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/initramfs"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mkguest kernel|cloud|initramfs|show|accel [flags]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	var err error
	switch os.Args[1] {
	case "kernel":
		err = kernel(ctx, os.Args[2:])
	case "cloud":
		err = cloud(ctx, os.Args[2:])
	case "initramfs":
		err = mkInitramfs(os.Args[2:])
	case "show":
		err = show(os.Args[2:])
	case "accel":
		err = detectAccel(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkguest:", err)
		os.Exit(1)
	}
}

func kernel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kernel", flag.ExitOnError)
	var o guest.BuildOptions
	fs.StringVar(&o.OutDir, "out", "build/guest", "output directory")
	fs.StringVar(&o.Fragment, "fragment", "vm/guest/kernel.config", "kernel config fragment")
	fs.StringVar(&o.Patches, "patches", "vm/guest/patches", "directory of kernel source patches (*.patch, -p1); empty: none")
	fs.StringVar(&o.Source, "source", guest.DefaultSourceTarball, "kernel source tarball")
	fs.StringVar(&o.SourcePackage, "source-package", guest.DefaultSourcePackage, "Debian package providing the source")
	fs.IntVar(&o.Jobs, "j", 0, "make jobs (default: number of CPUs)")
	fs.BoolVar(&o.Force, "force", false, "rebuild even if cached")
	fs.Parse(args)
	_, _, err := guest.BuildKernel(ctx, o)
	return err
}

func cloud(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cloud", flag.ExitOnError)
	var o guest.CloudOptions
	fs.StringVar(&o.OutDir, "out", "build/guest/cloud", "output directory")
	fs.StringVar(&o.Package, "package", guest.CloudPackage, "kernel image package")
	fs.StringVar(&o.Version, "version", guest.CloudVersion, "package version")
	fs.Parse(args)
	_, _, err := guest.FetchCloudKernel(ctx, o)
	return err
}

func mkInitramfs(args []string) error {
	fs := flag.NewFlagSet("initramfs", flag.ExitOnError)
	var spec initramfs.Spec
	out := fs.String("out", "", "output file")
	modules := fs.String("modules", "", "cloud kernel directory whose agent modules go in")
	gz := fs.Bool("gzip", false, "gzip the archive")
	version := fs.String("version", "", "Hull source version the init was built from (recorded in <out>.json)")
	fs.StringVar(&spec.Init, "init", "", "static binary for /init")
	fs.Parse(args)
	if *out == "" {
		return fmt.Errorf("initramfs: -out is required")
	}
	if *modules != "" {
		m, err := guest.ReadManifest(*modules)
		if err != nil {
			return err
		}
		for _, mod := range m.Modules {
			spec.Modules = append(spec.Modules, initramfs.Module{Name: mod.Name, Source: m.Path(mod.Path)})
		}
	}
	comp := "none"
	if *gz {
		spec.Compression, comp = initramfs.Gzip, "gzip"
	}
	if err := initramfs.WriteFile(*out, spec); err != nil {
		return err
	}
	// <out>.json says which init (agent build) the archive holds, for
	// `hull info`.
	_, err := guest.WriteInitrdManifest(*out, spec.Init, *version, comp, len(spec.Modules))
	return err
}

func show(args []string) error {
	fs := flag.NewFlagSet("show", flag.ExitOnError)
	dir := fs.String("dir", guest.DefaultDir(), "guest asset directory")
	fs.Parse(args)
	return printJSON(guest.Info(*dir))
}

func detectAccel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("accel", flag.ExitOnError)
	fresh := fs.Bool("fresh", false, "probe again instead of using the cached verdict")
	fs.Parse(args)
	return printJSON(accel.Detect(ctx, accel.Options{NoCache: *fresh}))
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
