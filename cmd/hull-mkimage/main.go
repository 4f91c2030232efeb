// Command hull-mkimage builds OCI images from Debian packages; see package
// imagebuild.
//
//	hull-mkimage build images/nginx/recipe.toml -o nginx.tar
//	hull-mkimage debian --name localhost/tiny --package busybox-static \
//	    --binary /bin/busybox --cmd '["/bin/busybox","sh"]' -o tiny.tar
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hullproject/hull/imagebuild"
)

type outFlags struct {
	output, cache, work, push, name string
	insecure, verbose               bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "hull-mkimage",
		Short:         "Build OCI images from Debian packages (offline, through the host's apt)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var of outFlags
	pf := root.PersistentFlags()
	pf.StringVarP(&of.output, "output", "o", "", "write the image as an OCI layout tar here (for `hull images import`)")
	pf.StringVar(&of.push, "push", "", "push the image to this reference (REGISTRY/REPO:TAG)")
	pf.BoolVar(&of.insecure, "insecure", false, "push over plain HTTP")
	pf.StringVar(&of.cache, "cache", "", "directory keeping downloaded .deb files (default "+imagebuild.DefaultCacheDir()+")")
	pf.StringVar(&of.work, "workdir", "", "where the staging tree is made (default $TMPDIR)")
	pf.StringVar(&of.name, "name", "", "image name (overrides the recipe's)")
	pf.BoolVarP(&of.verbose, "verbose", "v", false, "log each step")

	build := &cobra.Command{
		Use: "build RECIPE.toml", Short: "Build the image a recipe file describes", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := imagebuild.LoadRecipe(args[0])
			if err != nil {
				return err
			}
			return run(cmd.Context(), r, &of)
		},
	}
	root.AddCommand(build, debianCmd(&of))
	root.SetContext(ctx)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "hull-mkimage: %v\n", err)
		os.Exit(1)
	}
}

// debianCmd builds a recipe from flags.
func debianCmd(of *outFlags) *cobra.Command {
	var (
		r                              imagebuild.Recipe
		files, dirs, links, users, env []string
		entrypoint, cmdline            string
	)
	c := &cobra.Command{
		Use:   "debian --package PKG... --binary PATH... [flags]",
		Short: "Build an image from packages and paths given as flags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if r.Config.Entrypoint, err = argv("--entrypoint", entrypoint); err != nil {
				return err
			}
			if r.Config.Cmd, err = argv("--cmd", cmdline); err != nil {
				return err
			}
			r.Config.Env = env
			for _, f := range files {
				dst, src, ok := strings.Cut(f, "=")
				if !ok {
					return fmt.Errorf("--file %q: want IMAGEPATH=HOSTFILE", f)
				}
				r.Files = append(r.Files, imagebuild.File{Path: dst, Source: src})
			}
			for _, d := range dirs {
				p, m, _ := strings.Cut(d, ":")
				dir := imagebuild.Dir{Path: p}
				if m != "" {
					n, err := strconv.ParseUint(m, 8, 32)
					if err != nil {
						return fmt.Errorf("--dir %q: mode %q is not octal", d, m)
					}
					dir.Mode = uint32(n)
				}
				r.Dirs = append(r.Dirs, dir)
			}
			for _, l := range links {
				p, t, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("--symlink %q: want PATH=TARGET", l)
				}
				r.Symlinks = append(r.Symlinks, imagebuild.Symlink{Path: p, Target: t})
			}
			for _, u := range users {
				f := strings.Split(u, ":")
				if len(f) < 3 {
					return fmt.Errorf("--user %q: want NAME:UID:GID[:HOME[:SHELL]]", u)
				}
				uid, err1 := strconv.Atoi(f[1])
				gid, err2 := strconv.Atoi(f[2])
				if err1 != nil || err2 != nil {
					return fmt.Errorf("--user %q: uid and gid must be numbers", u)
				}
				us := imagebuild.User{Name: f[0], UID: uid, GID: gid}
				if len(f) > 3 {
					us.Home = f[3]
				}
				if len(f) > 4 {
					us.Shell = f[4]
				}
				r.Users = append(r.Users, us)
			}
			wd, _ := os.Getwd()
			r.SetDir(wd)
			return run(cmd.Context(), &r, of)
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&r.Packages, "package", nil, "Debian package (NAME or NAME=VERSION); repeat")
	fl.StringArrayVar(&r.Binaries, "binary", nil, "executable to take with its shared libraries; repeat")
	fl.StringArrayVar(&r.Libraries, "library", nil, "soname a binary loads with dlopen, taken like its DT_NEEDED ones; repeat")
	fl.StringArrayVar(&r.Paths, "path", nil, "file or directory to take from the packages; repeat")
	fl.StringArrayVar(&files, "file", nil, "IMAGEPATH=HOSTFILE: add a file of the host; repeat")
	fl.StringArrayVar(&dirs, "dir", nil, "PATH[:MODE]: create a directory (MODE in octal); repeat")
	fl.StringArrayVar(&links, "symlink", nil, "PATH=TARGET: create a symbolic link; repeat")
	fl.StringArrayVar(&users, "user", nil, "NAME:UID:GID[:HOME[:SHELL]] for /etc/passwd; repeat")
	fl.IntVar(&r.DependsDepth, "depends-depth", imagebuild.DefaultDependsDepth, "levels of Depends searched for missing libraries (negative: none)")
	fl.BoolVar(&r.HostLibraries, "host-libraries", false, "take libraries no package provides from the host")
	fl.StringVar(&entrypoint, "entrypoint", "", `entrypoint: a JSON array, or words split on spaces`)
	fl.StringVar(&cmdline, "cmd", "", `command: a JSON array, or words split on spaces`)
	fl.StringArrayVar(&env, "env", nil, "KEY=VALUE; repeat")
	fl.StringVar(&r.Config.WorkingDir, "workdir-config", "", "the image's working directory")
	fl.StringVar(&r.Config.User, "config-user", "", "the user the image runs as")
	fl.StringArrayVar(&r.Config.ExposedPorts, "port", nil, "exposed port, PORT[/tcp|udp]; repeat")
	fl.StringVar(&r.Config.StopSignal, "stop-signal", "", "signal that stops the container (e.g. SIGQUIT)")
	return c
}

func argv(flag, s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var out []string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("%s %q: not a JSON array of strings: %v", flag, s, err)
		}
		return out, nil
	}
	return strings.Fields(s), nil
}

func run(ctx context.Context, r *imagebuild.Recipe, of *outFlags) error {
	if of.name != "" {
		r.Name = of.name
	}
	if of.output == "" && of.push == "" {
		return fmt.Errorf("nowhere to put the image: give -o FILE.tar and/or --push REF")
	}
	level := slog.LevelWarn
	if of.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	b := &imagebuild.Builder{CacheDir: of.cache, WorkDir: of.work, Log: log}
	res, err := b.Build(ctx, r)
	if err != nil {
		return err
	}
	dg, err := res.Image.Digest()
	if err != nil {
		return err
	}
	if of.output != "" {
		if err := imagebuild.WriteLayout(res.Image, res.Name, of.output); err != nil {
			return err
		}
	}
	if of.push != "" {
		if err := imagebuild.Push(ctx, res.Image, of.push, of.insecure); err != nil {
			return err
		}
	}
	fmt.Printf("%s %s: %d files, %.1f MiB, from %s\n", res.Name, dg, res.Files, float64(res.Size)/(1<<20), strings.Join(res.Packages, " "))
	if len(res.HostFiles) > 0 {
		fmt.Printf("  from the host: %s\n", strings.Join(res.HostFiles, " "))
	}
	if of.output != "" {
		fmt.Printf("  written to %s\n", of.output)
	}
	if of.push != "" {
		fmt.Printf("  pushed to %s\n", of.push)
	}
	return nil
}
