package daemon_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hullproject/hull/internal/hulltest"
)

// start runs a private hulld with the busybox image pulled into ns
// "default".
func start(t *testing.T) (*hulltest.Daemon, string) {
	t.Helper()
	hulltest.RequireRoot(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Start()
	d.MustHull("images", "pull", ref)
	return d, ref
}

var runtimes = []string{"native", "runc"}

func TestRunExitCodeAndOutput(t *testing.T) {
	d, ref := start(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			d := d.For(t)
			for _, tc := range []struct {
				name     string
				args     []string
				code     int
				out, err string
			}{
				{"echo", []string{"echo", "hello"}, 0, "hello\n", ""},
				{"exit 3", []string{"sh", "-c", "exit 3"}, 3, "", ""},
				{"stderr", []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, 7, "out\n", "err\n"},
				{"255", []string{"sh", "-c", "exit 255"}, 255, "", ""},
				{"signalled child", []string{"sh", "-c", "sleep 5 & kill -9 $!; wait $!"}, 137, "", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					id := fmt.Sprintf("exit-%s-%s", rt, strings.ReplaceAll(tc.name, " ", "-"))
					out, errs, code := d.Hull(append([]string{"run", "--rm", "--runtime", rt, ref, id}, tc.args...)...)
					if code != tc.code || out != tc.out || !strings.Contains(errs, tc.err) {
						t.Fatalf("run %v: code %d (want %d), stdout %q (want %q), stderr %q (want %q)", tc.args, code, tc.code, out, tc.out, errs, tc.err)
					}
					if ls := d.MustHull("c", "ls"); strings.Contains(ls, id) {
						t.Fatalf("--rm left the container:\n%s", ls)
					}
				})
			}
		})
	}
}
