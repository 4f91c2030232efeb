// Package cli is hull-runtime's command line, runc's grammar: global
// flags --root --log --log-format --debug --systemd-cgroup, then one verb
// per file here (create.go, start.go, ...). containerd's go-runc drives
// it exactly as it drives runc.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/cgroups"
	"github.com/hullproject/hull/runtime/container"
	"github.com/hullproject/hull/runtime/internal/trace"
	"github.com/hullproject/hull/version"
)

type globals struct {
	root      string
	log       string
	logFormat string
	debug     bool
	systemd   bool
	rootless  string
	logging   bool // setup has installed the logger
}

// exitError carries an exit code out of a command without printing.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI with args (without the program name) and returns the
// process exit code.
func Main(args []string) int {
	trace.Mark("main")
	if slices.Contains(args, "run") || slices.Contains(args, "create") {
		// Likely to start a container: its init's binary is made
		// ready while the command line is parsed (an id or value
		// named so only costs that work in the background).
		container.PrepareInit()
	}
	g := &globals{}
	root := newRoot(g, verbOf(args))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if !g.logging {
		// Failed before the log was set up (usage errors).
		fmt.Fprintf(os.Stderr, "hull-runtime: %v\n", err)
		return 1
	}
	slog.Error(err.Error())
	if g.log != "" {
		// Also on stderr, which the log file does not replace.
		fmt.Fprintf(os.Stderr, "hull-runtime: %v\n", err)
	}
	return 1
}

// verbs are the commands, each built only when needed (see newRoot).
var verbs = []struct {
	names []string
	build func(*globals) *cobra.Command
}{
	{[]string{"create"}, newCreate}, {[]string{"start"}, newStart}, {[]string{"run"}, newRun},
	{[]string{"state"}, newState}, {[]string{"kill"}, newKill}, {[]string{"delete"}, newDelete},
	{[]string{"exec"}, newExec}, {[]string{"list", "ls"}, newList}, {[]string{"ps"}, newPs},
	{[]string{"pause"}, newPause}, {[]string{"resume"}, newResume}, {[]string{"update"}, newUpdate},
	{[]string{"events"}, newEvents}, {[]string{"spec"}, newSpec}, {[]string{"features"}, newFeatures},
}

// globalValueFlags are the global flags that take a value as the next
// argument (without "=").
var globalValueFlags = []string{"--root", "--log", "--log-format", "--rootless"}

// verbOf returns the command args name (its first argument that is not a
// global flag or a global flag's value), "" when that is not certain: an
// argument before it that is not a known global flag, or no command.
func verbOf(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case slices.Contains(globalValueFlags, a):
			i++ // its value
		case a == "--debug" || a == "--systemd-cgroup":
		case strings.HasPrefix(a, "--") && strings.Contains(a, "=") &&
			(slices.Contains(globalValueFlags, a[:strings.IndexByte(a, '=')]) ||
				strings.HasPrefix(a, "--debug=") || strings.HasPrefix(a, "--systemd-cgroup=")):
		case strings.HasPrefix(a, "-"):
			return "" // -h, --version, a flag of the command's, a typo: cobra decides
		default:
			return a
		}
	}
	return ""
}

// newRoot builds the command tree. A CLI call runs one command: when verb
// names one, only that command is built (a runtime call lives for
// milliseconds, and building the fifteen commands' flag sets costs about
// 0.1-0.2 ms of them, the container's start waiting); otherwise (help,
// --version, an unknown command and its suggestions) all of them.
func newRoot(g *globals, verb string) *cobra.Command {
	root := &cobra.Command{
		Use:           "hull-runtime",
		Short:         "Hull's OCI runtime (runc-compatible)",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("root") {
				g.root = defaultRoot()
			}
			return g.setup()
		},
	}
	root.SetVersionTemplate(fmt.Sprintf("hull-runtime version {{.Version}}\nspec: %s\n", version.OCISpec))
	f := root.PersistentFlags()
	f.StringVar(&g.root, "root", container.DefaultRoot, "directory for container state")
	f.StringVar(&g.log, "log", "", "log file (default stderr)")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&g.debug, "debug", false, "debug logging")
	f.BoolVar(&g.systemd, "systemd-cgroup", false, "use the systemd cgroup driver (not supported)")
	f.StringVar(&g.rootless, "rootless", "auto", "ignored (runc compatibility)")
	f.Lookup("rootless").Hidden = true
	for _, v := range verbs {
		if verb == "" || slices.Contains(v.names, verb) {
			root.AddCommand(v.build(g))
		}
	}
	if !root.HasSubCommands() {
		// Not a command: cobra's error and suggestions need them all.
		for _, v := range verbs {
			root.AddCommand(v.build(g))
		}
	}
	return root
}

// setup opens the log and refuses what is not supported.
func (g *globals) setup() error {
	var w io.Writer = os.Stderr
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("--log %s: %w", g.log, err)
		}
		w = f
	}
	// A --log file also gets notices (Info); stderr, which the
	// container's process shares, warnings and errors only.
	level := slog.LevelWarn
	if g.log != "" {
		level = slog.LevelInfo
	}
	if g.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		// runc (logrus) writes lowercase levels; containerd's shim
		// looks for "level":"error" in the log.
		if a.Key == slog.LevelKey {
			return slog.String("level", strings.ToLower(a.Value.String()))
		}
		return a
	}}
	switch g.logFormat {
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, opts)))
	case "text", "":
		slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
	default:
		return fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
	g.logging = true
	if g.systemd {
		return cgroups.ErrSystemd
	}
	return nil
}

// defaultRoot is container.DefaultRoot, or for a non-root user
// $XDG_RUNTIME_DIR/hull-runtime, as runc does.
func defaultRoot() string {
	if os.Geteuid() != 0 {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			return filepath.Join(d, "hull-runtime")
		}
	}
	return container.DefaultRoot
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: want %d argument(s) (%s), got %d", cmd.Name(), n, names, len(args))
		}
		return nil
	}
}
