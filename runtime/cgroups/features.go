package cgroups

import "github.com/opencontainers/runtime-spec/specs-go/features"

// Features is the cgroup part of the runtime-spec features document: what
// this package supports, whatever the host has (v1 and v2 drivers, RDMA
// limits; no systemd driver).
func Features() *features.Cgroup {
	yes, no := true, false
	return &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no, Rdma: &yes}
}
