package shim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SocketDir holds the shims' ttrpc sockets.
const SocketDir = "/run/hull/s"

// listenFdEnv tells the long-lived shim that `start` passed it the
// listening socket as fd 3.
const listenFdEnv = "HULL_SHIM_LISTEN_FD"

// flags are the arguments of containerd's shim binary protocol:
//
//	start:  -namespace NS -address ADDR -publish-binary BIN -id ID [-debug] start
//	delete: -namespace NS -address ADDR -publish-binary BIN -id ID -bundle B [-debug] delete
//	(none): the long-lived shim, started by start
type flags struct {
	namespace, address, publishBinary, id, bundle, socket string
	debug, version, info                                  bool
}

// Main runs the shim binary protocol with args (os.Args[1:]) and returns
// the process exit code.
func Main(name, version string, args []string) int {
	var f flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&f.namespace, "namespace", "", "namespace of the container")
	fs.StringVar(&f.address, "address", "", "the daemon's grpc address")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "binary to publish events with")
	fs.StringVar(&f.id, "id", "", "id of the container")
	fs.StringVar(&f.bundle, "bundle", "", "bundle path (delete)")
	fs.StringVar(&f.socket, "socket", "", "serve on this unix socket path (without start)")
	fs.BoolVar(&f.debug, "debug", false, "debug logging")
	fs.BoolVar(&f.version, "v", false, "print the version")
	fs.BoolVar(&f.info, "info", false, "print the runtime info (containerd 2.x introspection) as protobuf")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if f.version {
		fmt.Printf("%s:\n  Version: %s\n  Runtime API: containerd.task.v2\n", name, version)
		return 0
	}
	if f.info {
		if err := printInfo(name, version); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return 1
		}
		return 0
	}
	var err error
	switch action := fs.Arg(0); action {
	case "start":
		err = f.start()
	case "delete":
		err = f.delete()
	case "":
		err = f.serve()
	default:
		err = fmt.Errorf("unknown action %q (want start or delete)", action)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

func (f *flags) check() error {
	if f.namespace == "" {
		return errors.New("-namespace is required")
	}
	if f.id == "" {
		return errors.New("-id is required")
	}
	return nil
}

// printInfo answers containerd 2.x's `-info`: a types.RuntimeInfo with the
// runtime options read from stdin, if any, echoed back.
func printInfo(name, version string) error {
	info := &types.RuntimeInfo{
		Name:    "io.containerd.hull.v2",
		Version: &types.RuntimeVersion{Version: version},
	}
	if data, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20)); err == nil && len(data) > 0 {
		var a anypb.Any
		if proto.Unmarshal(data, &a) == nil {
			if _, err := ParseOptions(&a); err != nil {
				return err
			}
			info.Options = &a
		}
	}
	data, err := proto.Marshal(info)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(data)
	return err
}

// SocketPath is the ttrpc socket of the shim of container id in namespace
// ns of the daemon at address: short enough for sun_path whatever the
// names.
func SocketPath(address, ns, id string) string {
	h := fnv.New128a()
	h.Write([]byte(address + "\x00" + ns + "\x00" + id))
	return filepath.Join(SocketDir, fmt.Sprintf("%x", h.Sum(nil)))
}

// start spawns the long-lived shim in its own session, with the listening
// socket, and prints its address for the daemon.
func (f *flags) start() error {
	if err := f.check(); err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	path := SocketPath(f.address, f.namespace, f.id)
	address := "unix://" + path
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		// A shim for this container already serves: hand it out.
		c.Close()
		fmt.Print(address)
		return nil
	}
	_ = os.Remove(path)
	if err := os.MkdirAll(SocketDir, 0o711); err != nil {
		return err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	lf, err := l.File()
	if err != nil {
		return err
	}
	defer lf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-namespace", f.namespace, "-id", f.id, "-address", f.address}
	if f.publishBinary != "" {
		args = append(args, "-publish-binary", f.publishBinary)
	}
	if f.debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), listenFdEnv+"=3")
	cmd.ExtraFiles = []*os.File{lf}
	// Its own session and process group: the shim outlives the daemon and
	// its signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("spawn shim: %w", err)
	}
	_ = os.WriteFile(filepath.Join(cwd, "shim.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	_ = os.WriteFile(filepath.Join(cwd, "address"), []byte(address), 0o600)
	_ = cmd.Process.Release()
	fmt.Print(address)
	return nil
}

// delete cleans up after a shim that is gone: it is what the daemon runs
// when the shim died. It prints a DeleteResponse.
func (f *flags) delete() error {
	bundle := f.bundle
	if bundle == "" {
		var err error
		if bundle, err = os.Getwd(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Cleanup(ctx, bundle)
	if data, rerr := os.ReadFile(filepath.Join(bundle, "address")); rerr == nil {
		p := strings.TrimPrefix(strings.TrimSpace(string(data)), "unix://")
		if strings.HasPrefix(p, SocketDir+"/") {
			_ = os.Remove(p)
		}
	}
	if err != nil {
		return err
	}
	data, err := proto.Marshal(&taskapi.DeleteResponse{ExitedAt: timestamppb.Now(), ExitStatus: 128 + uint32(syscall.SIGKILL)})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(data)
	return err
}

// serve is the long-lived shim: a subreaper serving the task service on
// the socket start passed (or -socket), until Shutdown.
func (f *flags) serve() error {
	if err := f.check(); err != nil {
		return err
	}
	// The shim is small and mostly idle: collect garbage early and give
	// memory back, to keep its resident set low.
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(16 << 20)
	signal.Ignore(syscall.SIGPIPE)

	logw := openShimLog()
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level})).With("id", f.id, "namespace", f.namespace))

	if err := StartReaper(); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	var l net.Listener
	var sockPath string
	var err error
	if os.Getenv(listenFdEnv) == "3" {
		os.Unsetenv(listenFdEnv)
		lf := os.NewFile(3, "socket")
		l, err = net.FileListener(lf)
		lf.Close()
		if err == nil {
			sockPath = l.Addr().String()
		}
	} else if f.socket != "" {
		sockPath = f.socket
		_ = os.Remove(sockPath)
		l, err = net.Listen("unix", sockPath)
	} else {
		err = errors.New("no socket: run `start`, or give -socket")
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	pub := NewPublisher(f.namespace, os.Getenv("TTRPC_ADDRESS"), f.publishBinary, f.address)
	done := make(chan struct{})
	var once bool
	svc := NewService(f.id, f.namespace, pub, nil, func() {
		if !once {
			once = true
			// Give the Shutdown reply a moment to go out: ttrpc's Shutdown
			// may close a connection whose reply is still queued (daemons
			// take a closed connection as a done Shutdown). Kept short:
			// containerd waits for the connection to close before `ctr run
			// --rm` returns (100 ms here cost ~30 ms per run).
			time.AfterFunc(5*time.Millisecond, func() { close(done) })
		}
	})
	trim := newTrimmer()
	server, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(trim.interceptor))
	if err != nil {
		return err
	}
	taskapi.RegisterTaskService(server, svc)
	go func() {
		if err := server.Serve(context.Background(), l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			slog.Error("serve", "err", err)
		}
	}()
	trim.touch()
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	pub.Close(5 * time.Second)
	if sockPath != "" {
		_ = os.Remove(sockPath)
	}
	if c, ok := logw.(io.Closer); ok {
		c.Close()
	}
	return nil
}

// openShimLog opens the "log" fifo containerd makes in the bundle for the
// shim's log, or returns a discarding writer.
func openShimLog() io.Writer {
	if fi, err := os.Stat("log"); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w, err := fifo.OpenFifo(ctx, "log", syscall.O_WRONLY, 0)
	if err != nil {
		return io.Discard
	}
	return w
}
