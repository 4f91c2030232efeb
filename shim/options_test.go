package shim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func mustAny(t *testing.T, url string, m proto.Message) *anypb.Any {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: url, Value: data}
}

func TestParseOptions(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hull.toml")
	if err := os.WriteFile(cfg, []byte("binary_name = \"crun\"\nroot = \"/run/x\"\nsystemd_cgroup = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      *anypb.Any
		want    Options
		wantErr error
		errText string
	}{
		{name: "none", in: nil, want: Options{}},
		{name: "runc options", in: mustAny(t, "containerd.runc.v1.Options", &runcoptions.Options{BinaryName: "crun", Root: "/r", SystemdCgroup: true, IoUid: 7, IoGid: 8}),
			want: Options{BinaryName: "crun", Root: "/r", SystemdCgroup: true, IoUID: 7, IoGID: 8}},
		{name: "runc options with a type.googleapis.com prefix", in: mustAny(t, "type.googleapis.com/containerd.runc.v1.Options", &runcoptions.Options{BinaryName: "runc"}),
			want: Options{BinaryName: "runc"}},
		{name: "config path", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigPath: cfg}),
			want: Options{BinaryName: "crun", Root: "/run/x", SystemdCgroup: true}},
		{name: "config body", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte(`mode = "native"`)}),
			want: Options{Mode: "native"}},
		{name: "backend table", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("[backend]\nkernel = \"/k\"\n")}),
			want: Options{Backend: map[string]any{"kernel": "/k"}}},
		{name: "unknown type", in: &anypb.Any{TypeUrl: "x.y.Z"}, wantErr: errdefs.ErrInvalidArgument, errText: "x.y.Z"},
		{name: "garbage value", in: &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0xff, 0xff}}, wantErr: errdefs.ErrInvalidArgument, errText: "containerd.runc.v1.Options"},
		{name: "unknown key", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("binary = \"runc\"\n")}), wantErr: errdefs.ErrInvalidArgument, errText: "binary"},
		{name: "bad toml", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("binary_name = \n")}), wantErr: errdefs.ErrInvalidArgument, errText: "config_body"},
		{name: "missing file", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigPath: filepath.Join(dir, "nope.toml")}), wantErr: errdefs.ErrInvalidArgument, errText: "nope.toml"},
		{name: "unknown mode", in: mustAny(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte(`mode = "nosuch"`)}), wantErr: errdefs.ErrNotImplemented, errText: `"nosuch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("error %v, want %v naming %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestRuntimeBinaryAndRoot(t *testing.T) {
	o := &Options{BinaryName: "no-such-runtime-binary"}
	if _, err := o.RuntimeBinary(); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "no-such-runtime-binary") {
		t.Fatalf("missing binary: %v", err)
	}
	o = &Options{BinaryName: "/bin/sh"}
	if p, err := o.RuntimeBinary(); err != nil || p != "/bin/sh" {
		t.Fatalf("path: %q %v", p, err)
	}
	if r := (&Options{}).RuntimeRoot("ns1"); r != filepath.Join(DefaultRoot, "ns1") {
		t.Fatalf("default root %q", r)
	}
	if r := (&Options{Root: "/r"}).RuntimeRoot("ns1"); r != "/r/ns1" {
		t.Fatalf("root %q", r)
	}
}
