package diff_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/snapshot"
)

// The child half of TestKilledDuringApply: prepare a snapshot and apply an
// endless layer, printing "applying" once entries are being written.
func init() {
	root, backendName := os.Getenv("HULL_DIFF_KILL_ROOT"), os.Getenv("HULL_DIFF_KILL_BACKEND")
	if root == "" {
		return
	}
	for _, b := range backends {
		if b.name != backendName {
			continue
		}
		s, err := b.open(root)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		ctx := context.Background()
		ms, err := s.Prepare(ctx, "extract", "base")
		if err != nil {
			fmt.Println("prepare:", err)
			os.Exit(1)
		}
		pr, pw := io.Pipe()
		go func() {
			tw := newEndlessTar(pw)
			for i := 0; ; i++ {
				tw(i)
				if i == 50 {
					fmt.Println("applying")
				}
			}
		}()
		_, err = diff.Apply(ctx, ms, pr, "")
		fmt.Println("apply returned:", err)
		os.Exit(1)
	}
}

// TestKilledDuringApply kills a process with SIGKILL in the middle of
// unpacking a layer and checks that the snapshotter reopens consistently:
// the half-written snapshot is still recorded, can be removed, and nothing
// is left on disk or mounted.
func TestKilledDuringApply(t *testing.T) {
	needRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			s, err := b.open(root)
			if err != nil {
				t.Skip(err)
			}
			unpackOne(t, ctx, s, "base", mkTar(t, dir("etc/", 0o755), file("etc/a", "a", 0o644)))
			s.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "HULL_DIFF_KILL_ROOT="+root, "HULL_DIFF_KILL_BACKEND="+b.name)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if strings.TrimSpace(line) != "applying" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child said %q", line)
			}
			time.Sleep(50 * time.Millisecond)
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			s, err = b.open(root)
			if err != nil {
				t.Fatalf("reopen after kill: %v", err)
			}
			defer s.Close()
			kinds := map[string]snapshot.Kind{}
			_ = s.Walk(ctx, func(_ context.Context, i snapshot.Info) error { kinds[i.Name] = i.Kind; return nil })
			if kinds["extract"] != snapshot.KindActive || kinds["base"] != snapshot.KindCommitted || len(kinds) != 2 {
				t.Errorf("after kill: %v", kinds)
			}
			if err := s.Remove(ctx, "extract"); err != nil {
				t.Fatalf("remove half-applied snapshot: %v", err)
			}
			if err := s.Remove(ctx, "base"); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(ents) != 0 {
				t.Errorf("left on disk: %v", ents)
			}
		})
	}
}

func unpackOne(t *testing.T, ctx context.Context, s snapshot.Snapshotter, name string, layer []byte) {
	t.Helper()
	ms, err := s.Prepare(ctx, name+"-x", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := diff.Apply(ctx, ms, strings.NewReader(string(layer)), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, name, name+"-x"); err != nil {
		t.Fatal(err)
	}
}
