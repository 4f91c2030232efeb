package network

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// cniHostPort is a port published through portmap by anyone on this host:
// another hulld, podman, a CRI runtime.
type cniHostPort struct {
	proto, network, id string
	lo, hi             uint16
}

var (
	dnatProtoRE   = regexp.MustCompile(`-p (tcp|udp)\b`)
	dnatPortsRE   = regexp.MustCompile(`--dports (\S+)`)
	dnatCommentRE = regexp.MustCompile(`dnat name: \\"([^\\"]*)\\" id: \\"([^\\"]*)\\"`)
)

// cniHostPorts reads portmap's top chain (iptables -t nat -S
// CNI-HOSTPORT-DNAT). No iptables or no chain means none; the chain's rules
// carry the protocol, the ports and a comment naming network and container.
func cniHostPorts(ctx context.Context) []cniHostPort {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").Output()
	if err != nil {
		return nil
	}
	return parseHostPortRules(string(out))
}

func parseHostPortRules(rules string) []cniHostPort {
	var out []cniHostPort
	for _, line := range strings.Split(rules, "\n") {
		if !strings.HasPrefix(line, "-A CNI-HOSTPORT-DNAT ") {
			continue
		}
		pm, dm, cm := dnatProtoRE.FindStringSubmatch(line), dnatPortsRE.FindStringSubmatch(line), dnatCommentRE.FindStringSubmatch(line)
		if pm == nil || dm == nil || cm == nil {
			continue
		}
		for _, r := range strings.Split(dm[1], ",") {
			a, b, isRange := strings.Cut(r, ":")
			lo, err := strconv.ParseUint(a, 10, 16)
			if err != nil {
				continue
			}
			hi := lo
			if isRange {
				if hi, err = strconv.ParseUint(b, 10, 16); err != nil {
					continue
				}
			}
			out = append(out, cniHostPort{proto: pm[1], network: cm[1], id: cm[2], lo: uint16(lo), hi: uint16(hi)})
		}
	}
	return out
}
