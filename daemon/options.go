package daemon

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hullproject/hull/config"
	"github.com/hullproject/hull/oci"
)

// snake turns BinaryName into binary_name (containerd's runc options are
// written with Go field names in its TOML).
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// runtimeOptions builds the options Any sent with CreateTask: the runc
// shim's containerd.runc.v1.Options for io.containerd.runc.v2, a TOML body
// (runtimeoptions.v1.Options) for other shims.
func runtimeOptions(rt config.Runtime) (*anypb.Any, error) {
	if len(rt.Options) == 0 {
		return nil, nil
	}
	var m proto.Message
	if rt.Type == "io.containerd.runc.v2" {
		norm := map[string]any{}
		for k, v := range rt.Options {
			norm[snake(k)] = v
		}
		data, err := json.Marshal(norm)
		if err != nil {
			return nil, err
		}
		var o runcoptions.Options
		if err := protojson.Unmarshal(data, &o); err != nil {
			return nil, fmt.Errorf("options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		m = &o
	} else {
		body, err := toml.Marshal(rt.Options)
		if err != nil {
			return nil, err
		}
		m = &runtimeoptions.Options{ConfigBody: body}
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	// containerd 1.6's shims look types up by their bare protobuf name.
	a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
	return a, nil
}

func applyUser(s *specs.Spec, u string) error {
	return oci.ApplyOpts(s, oci.WithUser(u))
}
