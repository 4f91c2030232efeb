// Command hulld is Hull's daemon; see package daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/hullproject/hull/config"
	"github.com/hullproject/hull/daemon"
	"github.com/hullproject/hull/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("hulld", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (default "+config.DefaultPath+" if present)")
	root := fs.String("root", "", "persistent data directory (overrides root)")
	state := fs.String("state", "", "runtime state directory (overrides state)")
	address := fs.String("address", "", "gRPC socket (overrides address)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides log_level)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "hulld: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *showVersion {
		fmt.Println("hulld", version.Version)
		return 0
	}
	var cfg *config.Config
	var err error
	if *cfgPath == "" {
		cfg, err = config.Load(config.DefaultPath, true)
	} else {
		cfg, err = config.Load(*cfgPath, false)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hulld: %v\n", err)
		return 1
	}
	set := func(flagVal string, dst *string) {
		if flagVal != "" {
			*dst = flagVal
		}
	}
	set(*root, &cfg.Root)
	set(*state, &cfg.State)
	set(*address, &cfg.Address)
	set(*logLevel, &cfg.LogLevel)
	for _, p := range []*string{&cfg.Root, &cfg.State, &cfg.Address} {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "hulld: %v\n", err)
		return 1
	}
	if *printConfig {
		out, err := cfg.Marshal()
		if err != nil {
			fmt.Fprintf(os.Stderr, "hulld: %v\n", err)
			return 1
		}
		os.Stdout.Write(out)
		return 0
	}
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "hulld: must run as root")
		return 1
	}

	var o daemon.Options
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "hull"); fileExists(p) {
			o.Publisher = p
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	d, err := daemon.New(ctx, cfg, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hulld: %v\n", err)
		return 1
	}
	err = d.Serve(ctx, nil)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "hulld: %v\n", err)
		return 1
	}
	return 0
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
