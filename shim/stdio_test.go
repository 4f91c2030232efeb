package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestFileURI(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"/run/fifo/x-stdout", "/run/fifo/x-stdout", nil},
		{"file:///var/log/c.log", "/var/log/c.log", nil},
		{"binary:///usr/bin/logger?x=1", "", errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		got, err := fileURI(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("fileURI(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestProcIOFiles: plain files (file:// log URIs) take the output, and an
// unsupported URI is refused by name before anything is opened.
func TestProcIOFiles(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "out.log")
	p, err := newProcIO(context.Background(), Stdio{Stdout: "file://" + log, Stderr: "file://" + log}, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	p.copyOut(p.outs[0], strings.NewReader("one\n"))
	p.outputs.Wait()
	p.copyOut(p.outs[1], strings.NewReader("two\n"))
	p.outputs.Wait()
	p.close()
	if data, _ := os.ReadFile(log); string(data) != "one\ntwo\n" {
		t.Fatalf("log %q", data)
	}
	if _, err := newProcIO(context.Background(), Stdio{Stdout: "binary:///bin/logger"}, 0, 0); !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "binary") {
		t.Fatalf("binary logger: %v", err)
	}
}
