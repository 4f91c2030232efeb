// Package server is the guest side of hull-agent: the agent API service
// (Server, running containers with runtime/container), the virtio-serial
// transport (SerialListener) and the duties of PID 1 (MountKernelFS,
// LoadModules, Reaper, PowerOff). See package agent for the API.
package server

// Version is reported by the Version RPC.
const Version = "0.1.0"
