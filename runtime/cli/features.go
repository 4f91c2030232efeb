package cli

import (
	"encoding/json"
	"fmt"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/cobra"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/container"
	"github.com/hullproject/hull/runtime/label"
	"github.com/hullproject/hull/runtime/rootfs"
)

func newFeatures(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print the runtime-spec features document",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := true
			aa, se := label.Features()
			var opts []string
			for _, o := range rootfs.MountOptions() {
				opts = append(opts, o)
			}
			sort.Strings(opts)
			f := features.Features{
				OCIVersionMin: "1.0.0",
				OCIVersionMax: specs.Version,
				Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
				MountOptions:  opts,
				Linux: &features.Linux{
					Namespaces:      []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
					Capabilities:    caps.Known(),
					Cgroup:          &features.Cgroup{V1: &t, V2: &t, Systemd: new(bool), SystemdUser: new(bool), Rdma: new(bool)},
					Seccomp:         container.SeccompFeatures(),
					Apparmor:        aa,
					Selinux:         se,
					IntelRdt:        &features.IntelRdt{Enabled: new(bool)},
					MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: new(bool)}},
				},
				Annotations: map[string]string{"org.hullproject.runtime": "hull-runtime"},
			}
			data, err := json.MarshalIndent(&f, "", "    ")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(data))
			return nil
		},
	}
}
