package network

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortMapping publishes a container port on the host (portmap's portMappings capability).
type PortMapping struct {
	HostIP        string `json:"host_ip,omitempty"` // "" = all addresses
	HostPort      uint16 `json:"host_port"`
	ContainerPort uint16 `json:"container_port"`
	Protocol      string `json:"protocol"` // "tcp" | "udp"
}

// String formats the mapping the way docker ps does: "0.0.0.0:8080->80/tcp".
func (p PortMapping) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%s:%d->%d/%s", ip, p.HostPort, p.ContainerPort, proto)
}

// key identifies the host side of a mapping.
func (p PortMapping) hostAddr() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d/%s", ip, p.HostPort, p.Protocol)
}

// conflicts reports whether two mappings claim the same host port: same
// protocol and port, and the same address or one of them on all addresses.
func (p PortMapping) conflicts(q PortMapping) bool {
	return p.Protocol == q.Protocol && p.HostPort == q.HostPort &&
		(p.HostIP == q.HostIP || p.HostIP == "" || q.HostIP == "")
}

// maxRange bounds the number of mappings one range spec may expand to.
const maxRange = 1024

// ParsePort parses one "-p" value: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp].
// HOSTPORT and CONTAINERPORT may be ranges "a-b" of equal length, which
// expand to one mapping per port. HOSTIP is an IPv4 address (the networks
// are IPv4); "0.0.0.0" means all addresses and is stored as "".
func ParsePort(s string) ([]PortMapping, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPort, s, fmt.Sprintf(format, a...))
	}
	if s == "" {
		return nil, bad("empty; use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
	}
	spec, proto := s, "tcp"
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		spec, proto = s[:i], strings.ToLower(s[i+1:])
		switch proto {
		case "tcp", "udp":
		case "sctp":
			return nil, bad("protocol sctp is not supported (tcp or udp)")
		case "":
			return nil, bad("empty protocol after '/' (tcp or udp)")
		default:
			return nil, bad("unknown protocol %q (tcp or udp)", proto)
		}
	}
	if strings.HasPrefix(spec, "[") {
		return nil, bad("IPv6 host addresses are not supported (the networks are IPv4)")
	}
	parts := strings.Split(spec, ":")
	var hostIP, hostPart, ctrPart string
	switch len(parts) {
	case 1:
		return nil, bad("no host port; publishing needs HOSTPORT:CONTAINERPORT (random host ports are not supported)")
	case 2:
		hostPart, ctrPart = parts[0], parts[1]
	case 3:
		hostIP, hostPart, ctrPart = parts[0], parts[1], parts[2]
		if hostIP == "" {
			return nil, bad("empty host IP before the first ':'")
		}
		addr, err := netip.ParseAddr(hostIP)
		if err != nil || !addr.Is4() {
			return nil, bad("host IP %q is not an IPv4 address", hostIP)
		}
		if addr.IsUnspecified() {
			hostIP = ""
		} else {
			hostIP = addr.String()
		}
	default:
		return nil, bad("too many ':' (IPv6 host addresses are not supported)")
	}
	if hostPart == "" {
		return nil, bad("empty host port (random host ports are not supported)")
	}
	if ctrPart == "" {
		return nil, bad("empty container port")
	}
	hLo, hHi, err := parsePortRange(hostPart)
	if err != nil {
		return nil, bad("host port: %v", err)
	}
	cLo, cHi, err := parsePortRange(ctrPart)
	if err != nil {
		return nil, bad("container port: %v", err)
	}
	if hHi-hLo != cHi-cLo {
		return nil, bad("host range %s and container range %s differ in length", hostPart, ctrPart)
	}
	if n := int(hHi-hLo) + 1; n > maxRange {
		return nil, bad("range of %d ports is too large (at most %d)", n, maxRange)
	}
	out := make([]PortMapping, 0, int(hHi-hLo)+1)
	for i := 0; i <= int(hHi-hLo); i++ {
		out = append(out, PortMapping{HostIP: hostIP, HostPort: hLo + uint16(i), ContainerPort: cLo + uint16(i), Protocol: proto})
	}
	return out, nil
}

func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePortNumber(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePortNumber(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %q ends before it starts", s)
	}
	return lo, hi, nil
}

func parsePortNumber(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("empty port number")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1-65535", n)
	}
	return uint16(n), nil
}

// ParsePorts parses several "-p" values and rejects a host port published twice.
func ParsePorts(ss []string) ([]PortMapping, error) {
	var out []PortMapping
	for _, s := range ss {
		ms, err := ParsePort(s)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			for _, o := range out {
				if m.conflicts(o) {
					return nil, fmt.Errorf("%w %q: host port %s is already published by another -p (%s)", ErrInvalidPort, s, m.hostAddr(), o)
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// validatePorts checks mappings handed to Attach (they may not come from ParsePort).
func validatePorts(ps []PortMapping) ([]PortMapping, error) {
	out := make([]PortMapping, 0, len(ps))
	for _, p := range ps {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		p.Protocol = strings.ToLower(p.Protocol)
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return nil, fmt.Errorf("%w %s: protocol %q is not supported (tcp or udp)", ErrInvalidPort, p, p.Protocol)
		}
		if p.HostPort == 0 || p.ContainerPort == 0 {
			return nil, fmt.Errorf("%w %s: port 0", ErrInvalidPort, p)
		}
		if p.HostIP != "" {
			addr, err := netip.ParseAddr(p.HostIP)
			if err != nil || !addr.Is4() {
				return nil, fmt.Errorf("%w %s: host IP %q is not an IPv4 address", ErrInvalidPort, p, p.HostIP)
			}
			if addr.IsUnspecified() {
				p.HostIP = ""
			} else {
				p.HostIP = addr.String()
			}
		}
		for _, o := range out {
			if p.conflicts(o) {
				return nil, fmt.Errorf("%w: host port %s is published twice (%s and %s)", ErrInvalidPort, p.hostAddr(), o, p)
			}
		}
		out = append(out, p)
	}
	return out, nil
}
