package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
)

// AttachOptions for Manager.Attach.
type AttachOptions struct {
	ID       string // unique key, e.g. "<hull namespace>/<container id>"; made file-safe by the package
	Network  string // "" = the default network; None and Host are the caller's business
	Ports    []PortMapping
	Hostname string
	IfName   string // default "eth0"
}

// Attachment is a container's place on a network.
type Attachment struct {
	ID       string        `json:"id"`
	Network  string        `json:"network"`
	NetNS    string        `json:"netns"` // bind-mounted netns: the spec's network namespace path
	IfName   string        `json:"if_name"`
	MAC      string        `json:"mac,omitempty"`
	IPs      []string      `json:"ips,omitempty"` // CIDR, e.g. "10.88.0.5/16"
	Gateway  string        `json:"gateway,omitempty"`
	Ports    []PortMapping `json:"ports,omitempty"`
	Hostname string        `json:"hostname,omitempty"`
}

// record is the JSON kept under <StateDir>/attachments. It is written before
// the netns and CNI ADD (Complete false), so a crash in between still leaves
// enough for Detach to undo.
type record struct {
	Attachment
	CNIID    string          `json:"cni_id"`
	Conflist json.RawMessage `json:"conflist"` // the conflist as used for ADD
	Complete bool            `json:"complete"`
	Created  time.Time       `json:"created"`
}

var cniIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// cniID turns an attachment ID into a CNI container ID and file name: the ID
// itself when it is already safe, else the safe characters and a hash.
func cniID(id string) string {
	if cniIDRE.MatchString(id) && len(id) <= 128 {
		return id
	}
	var b strings.Builder
	for _, r := range id {
		if r < 0x80 && (r == '_' || r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), "_.-")
	if len(s) > 100 {
		s = s[:100]
	}
	sum := sha256.Sum256([]byte(id))
	if s == "" {
		return "h" + hex.EncodeToString(sum[:8])
	}
	return s + "-" + hex.EncodeToString(sum[:4])
}

func (m *Manager) recordPath(id string) string {
	return filepath.Join(m.cfg.StateDir, "attachments", cniID(id)+".json")
}

func (m *Manager) netnsPath(id string) string {
	return filepath.Join(m.cfg.StateDir, "netns", cniID(id))
}

func (m *Manager) readRecord(id string) (*record, error) {
	b, err := os.ReadFile(m.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("attachment %q: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("attachment %q: %w", id, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("attachment %q: %s: %w", id, m.recordPath(id), err)
	}
	return &r, nil
}

func (m *Manager) writeRecord(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(m.recordPath(r.ID), append(b, '\n'), 0o600)
}

// Attachment returns the record of one attachment, or errdefs.ErrNotFound.
func (m *Manager) Attachment(id string) (*Attachment, error) {
	r, err := m.readRecord(id)
	if err != nil {
		return nil, err
	}
	a := r.Attachment
	return &a, nil
}

// Attachments returns every recorded attachment, including ones whose Attach
// never finished (hulld crashed); Detach cleans those up too.
func (m *Manager) Attachments() ([]*Attachment, error) {
	files, err := filepath.Glob(filepath.Join(m.cfg.StateDir, "attachments", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*Attachment
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			slog.Warn("network: unreadable attachment record", "file", f, "error", err)
			continue
		}
		a := r.Attachment
		out = append(out, &a)
	}
	return out, nil
}

// loopbackConf brings up lo in every netns Hull attaches (CNI's loopback plugin).
var loopbackConf = func() *libcni.PluginConfig {
	c, err := libcni.ConfFromBytes([]byte(`{"cniVersion":"` + cniVersion + `","name":"` + loopbackName + `","type":"loopback"}`))
	if err != nil {
		panic(err)
	}
	return c
}()

// prepare injects the host-local dataDir (under StateDir, so allocations are
// per daemon) into a conflist that does not set one.
func (m *Manager) prepare(list *libcni.NetworkConfigList) (*libcni.NetworkConfigList, error) {
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, err
	}
	plugins, _ := raw["plugins"].([]any)
	changed := false
	for _, p := range plugins {
		pm, _ := p.(map[string]any)
		ipam, _ := pm["ipam"].(map[string]any)
		if ipam == nil || ipam["type"] != "host-local" {
			continue
		}
		if _, ok := ipam["dataDir"]; !ok {
			ipam["dataDir"] = filepath.Join(m.cfg.StateDir, "ipam")
			changed = true
		}
	}
	if !changed {
		return list, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(b)
}

// checkPlugins finds every plugin (and IPAM plugin) of a conflist, and loopback.
func (m *Manager) checkPlugins(list *libcni.NetworkConfigList) error {
	types := []string{"loopback"}
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
		if p.Network.IPAM.Type != "" {
			types = append(types, p.Network.IPAM.Type)
		}
	}
	for _, t := range types {
		if _, err := invoke.FindInPath(t, m.cfg.PluginDirs); err != nil {
			return fmt.Errorf("%w %q (network %s): not found in %s", ErrMissingPlugin, t, list.Name, strings.Join(m.cfg.PluginDirs, ", "))
		}
	}
	return nil
}

// withoutPortmap returns list without its portmap plugins, for an
// attachment that publishes no ports. The portmap plugin's ADD and DEL do
// nothing without port mappings (they hand the previous result on), but
// each is one more plugin exec on a container's start and removal, ~10 ms
// here.
func withoutPortmap(list *libcni.NetworkConfigList) (*libcni.NetworkConfigList, error) {
	if !slices.ContainsFunc(list.Plugins, func(p *libcni.PluginConfig) bool { return p.Network.Type == "portmap" }) {
		return list, nil
	}
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, err
	}
	plugins, _ := raw["plugins"].([]any)
	kept := make([]any, 0, len(plugins))
	for _, p := range plugins {
		if pm, _ := p.(map[string]any); pm["type"] == "portmap" {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return list, nil
	}
	raw["plugins"] = kept
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(b)
}

func hasCapability(list *libcni.NetworkConfigList, c string) bool {
	for _, p := range list.Plugins {
		if p.Network.Capabilities[c] {
			return true
		}
	}
	return false
}

// Attach creates a netns, runs CNI ADD (loopback, beside the network's
// conflist with the portMappings capability) and records the attachment.
// Before ADD it checks every host port: held by another attachment or bound
// by a host process gives ErrPortInUse. On any error everything done so far
// is undone (DEL, netns removed, IPAM released, record removed).
func (m *Manager) Attach(ctx context.Context, o AttachOptions) (_ *Attachment, retErr error) {
	if o.ID == "" {
		return nil, fmt.Errorf("%w: attachment ID is empty", errdefs.ErrInvalidArgument)
	}
	netName := o.Network
	if netName == "" {
		netName = m.cfg.DefaultName
	}
	if netName == None || netName == Host {
		return nil, fmt.Errorf("%w: network %q is handled by the caller, not attached", errdefs.ErrInvalidArgument, netName)
	}
	ifName := o.IfName
	if ifName == "" {
		ifName = "eth0"
	}
	if len(ifName) > 15 || strings.ContainsAny(ifName, "/ \t\n:") || ifName == "lo" {
		return nil, fmt.Errorf("%w: interface name %q", errdefs.ErrInvalidArgument, ifName)
	}
	ports, err := validatePorts(o.Ports)
	if err != nil {
		return nil, err
	}

	unlock := m.locks.lock(o.ID)
	defer unlock()
	if _, err := os.Stat(m.recordPath(o.ID)); err == nil {
		return nil, fmt.Errorf("attachment %q: %w", o.ID, errdefs.ErrAlreadyExists)
	}

	// Load the network and reserve the ports under m.mu, so Remove and other
	// attaches see this one.
	m.mu.Lock()
	var list *libcni.NetworkConfigList
	for {
		list, _, err = m.load(netName)
		if err == nil {
			list, err = m.prepare(list)
		}
		if err == nil {
			err = m.checkPlugins(list)
		}
		if err == nil && len(ports) > 0 && !hasCapability(list, "portMappings") {
			err = fmt.Errorf("%w: network %s cannot publish ports (no plugin in its conflist has the portMappings capability)", ErrInvalidPort, netName)
		}
		if err == nil {
			err = m.checkPortsLocked(ctx, o.ID, ports)
		}
		// Ports held only by an attachment on its way out: wait for its
		// detach, then check again.
		if waited, werr := m.waitDetached(ctx, err); waited && werr == nil {
			continue
		} else if werr != nil {
			err = werr
		}
		break
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.active[o.ID] = activeEntry{network: netName, ports: ports}
	m.mu.Unlock()
	if len(ports) == 0 {
		// The record keeps this list too: DEL runs what ADD ran.
		if list, err = withoutPortmap(list); err != nil {
			return nil, fmt.Errorf("attachment %q: network %s: %w", o.ID, netName, err)
		}
	}

	rec := &record{
		Attachment: Attachment{ID: o.ID, Network: netName, NetNS: m.netnsPath(o.ID), IfName: ifName, Ports: ports, Hostname: o.Hostname},
		CNIID:      cniID(o.ID),
		Conflist:   list.Bytes,
		Created:    time.Now().UTC(),
	}
	defer func() {
		if retErr == nil {
			return
		}
		if err := m.teardown(ctx, rec); err != nil {
			slog.Error("network: undoing a failed attach", "id", o.ID, "error", err)
			return // the record stays so that Detach can try again
		}
		m.forget(o.ID)
	}()
	if err := m.writeRecord(rec); err != nil {
		return nil, fmt.Errorf("attachment %q: %w", o.ID, err)
	}
	// The caller's context is honoured between steps, not inside a plugin:
	// a plugin killed half way (bridge between its IPAM and its NAT rules)
	// leaves state that its own DEL then trips over.
	pctx, cancel := pluginContext(ctx)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attachment %q: %w", o.ID, err)
	}
	if err := newNetNS(rec.NetNS); err != nil {
		return nil, fmt.Errorf("attachment %q: %w", o.ID, err)
	}
	// lo and the network's interface are independent: the loopback
	// plugin's ADD runs beside the list's (one plugin exec less on the
	// path).
	lo := make(chan error, 1)
	go func() {
		_, err := m.cni.AddNetwork(pctx, loopbackConf, &libcni.RuntimeConf{ContainerID: rec.CNIID, NetNS: rec.NetNS, IfName: "lo"})
		lo <- err
	}()
	res, err := m.cni.AddNetworkList(pctx, list, m.runtimeConf(rec))
	if loErr := <-lo; loErr != nil && err == nil {
		return nil, fmt.Errorf("attachment %q: loopback: %w", o.ID, loErr)
	}
	if err != nil {
		return nil, fmt.Errorf("attachment %q: network %s: %w", o.ID, netName, err)
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("attachment %q: network %s: result: %w", o.ID, netName, err)
	}
	fillFromResult(&rec.Attachment, r100)
	rec.Complete = true
	if err := m.writeRecord(rec); err != nil {
		return nil, fmt.Errorf("attachment %q: %w", o.ID, err)
	}
	slog.Debug("network: attached", "id", o.ID, "network", netName, "ips", rec.IPs, "ports", len(ports))
	a := rec.Attachment
	return &a, nil
}

func (m *Manager) runtimeConf(r *record) *libcni.RuntimeConf {
	pm := make([]map[string]any, 0, len(r.Ports))
	for _, p := range r.Ports {
		e := map[string]any{"hostPort": int(p.HostPort), "containerPort": int(p.ContainerPort), "protocol": p.Protocol}
		if p.HostIP != "" {
			e["hostIP"] = p.HostIP
		}
		pm = append(pm, e)
	}
	return &libcni.RuntimeConf{
		ContainerID:    r.CNIID,
		NetNS:          r.NetNS,
		IfName:         r.IfName,
		CapabilityArgs: map[string]any{"portMappings": pm},
	}
}

func fillFromResult(a *Attachment, r *types100.Result) {
	idx := -1
	for i, ifc := range r.Interfaces {
		if ifc.Sandbox != "" && ifc.Name == a.IfName {
			idx = i
			a.MAC = ifc.Mac
		}
	}
	for _, ip := range r.IPs {
		if idx >= 0 && ip.Interface != nil && *ip.Interface != idx {
			continue
		}
		a.IPs = append(a.IPs, ip.Address.String())
		if a.Gateway == "" && ip.Gateway != nil {
			a.Gateway = ip.Gateway.String()
		}
	}
}

// forget drops an attachment's record and port reservation.
func (m *Manager) forget(id string) {
	if err := os.Remove(m.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		slog.Warn("network: removing attachment record", "id", id, "error", err)
	}
	m.mu.Lock()
	delete(m.active, id)
	m.mu.Unlock()
}

// Detach runs CNI DEL with libcni's cached configuration (so it works after
// a restart of hulld, and even if the conflist changed), removes the netns
// and the record. An unknown ID is not an error.
func (m *Manager) Detach(ctx context.Context, id string) error {
	unlock := m.locks.lock(id)
	defer unlock()
	m.mu.Lock()
	leaving := m.markDetachingLocked(id)
	m.mu.Unlock()
	defer m.detachEnded(id, leaving)
	rec, err := m.readRecord(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		// Nothing recorded; a netns file without record cannot come from
		// Attach (the record is written first), but clean it if present.
		if err := removeNetNS(m.netnsPath(id)); err != nil {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.teardown(ctx, rec); err != nil {
		return err
	}
	m.forget(id)
	slog.Debug("network: detached", "id", id, "network", rec.Network)
	return nil
}

// pluginTimeout bounds one CNI call made with pluginContext.
const pluginTimeout = 2 * time.Minute

// pluginContext is the context plugins run under: not cancelled with the
// caller's (see Attach), but bounded.
func pluginContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), pluginTimeout)
}

// teardown runs CNI DEL for the network and loopback and removes the netns.
func (m *Manager) teardown(ctx context.Context, rec *record) error {
	ctx, cancel := pluginContext(ctx)
	defer cancel()
	rt := m.runtimeConf(rec)
	if !isNetNS(rec.NetNS) {
		rt.NetNS = "" // plugins release host-side state without a netns
	}
	list, crt, cached, err := m.cachedList(rec, rt)
	if err != nil {
		return fmt.Errorf("detach %q: %w", rec.ID, err)
	}
	// The addresses, for the checks after a failed DEL.
	ips := rec.IPs
	for _, dir := range hostLocalDirs(list) {
		ips = append(ips, hostLocalIPs(dir, rec.CNIID, rec.IfName)...)
	}
	if !cached {
		m.delWithoutCache(ctx, list, rec, crt)
	}
	// The loopback plugin's DEL runs beside the list's (see Attach).
	lo := make(chan struct{})
	go func() {
		defer close(lo)
		lrt := &libcni.RuntimeConf{ContainerID: rec.CNIID, NetNS: rt.NetNS, IfName: "lo"}
		if err := m.cni.DelNetwork(ctx, loopbackConf, lrt); err != nil {
			slog.Warn("network: loopback DEL", "id", rec.ID, "error", err)
		}
	}()
	err = m.cni.DelNetworkList(ctx, list, crt)
	if err != nil {
		err = m.delEachPlugin(ctx, list, rec, crt, ips, err)
	}
	<-lo
	if err != nil {
		return fmt.Errorf("detach %q: network %s: %w", rec.ID, rec.Network, err)
	}
	if err := removeNetNS(rec.NetNS); err != nil {
		return fmt.Errorf("detach %q: %w", rec.ID, err)
	}
	return nil
}

// delEachPlugin follows a failed DEL of the whole list: it runs every
// plugin's DEL on its own, in reverse order, going on past failures (the
// list stops at the first), then looks for what is left: host-local
// allocations of the container, and iptables rules naming it or its
// addresses. Plugins' DEL is not always idempotent (the bridge plugin fails
// on a NAT chain that an interrupted ADD never made), so a DEL that fails
// but leaves nothing is a success; anything left keeps the error.
func (m *Manager) delEachPlugin(ctx context.Context, list *libcni.NetworkConfigList, rec *record, rt *libcni.RuntimeConf, ips []string, listErr error) error {
	prev, _ := m.cni.GetNetworkListCachedResult(list, rt)
	errs := []error{listErr}
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
		if prev != nil {
			inject["prevResult"] = prev
		}
		pc, err := libcni.InjectConf(list.Plugins[i], inject)
		if err == nil {
			err = m.cni.DelNetwork(ctx, pc, rt)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s (delete): %w", list.Plugins[i].Network.Type, err))
		}
	}
	left := residue(list, rec, ips)
	if len(left) > 0 {
		return fmt.Errorf("%w; left behind: %s", errors.Join(errs...), strings.Join(left, ", "))
	}
	slog.Warn("network: CNI DEL failed but left nothing behind", "id", rec.ID, "network", rec.Network, "error", errors.Join(errs...))
	return nil
}

// residue lists what of an attachment is still on the host.
func residue(list *libcni.NetworkConfigList, rec *record, ips []string) []string {
	var left []string
	for _, dir := range hostLocalDirs(list) {
		for _, ip := range hostLocalIPs(dir, rec.CNIID, rec.IfName) {
			left = append(left, "IPAM allocation "+strings.TrimSuffix(ip, "/32"))
		}
	}
	seen := map[string]bool{}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			continue
		}
		rules := string(out)
		if strings.Contains(rules, `\"`+rec.CNIID+`\"`) {
			left = append(left, "iptables "+table+" rules naming "+rec.CNIID)
		}
		clear(seen)
		for _, cidr := range ips {
			ip := strings.Split(cidr, "/")[0]
			if seen[ip] {
				continue
			}
			seen[ip] = true
			if strings.Contains(rules, " "+ip+"/32 ") || strings.Contains(rules, " "+ip+":") || strings.Contains(rules, " "+ip+" ") {
				left = append(left, "iptables "+table+" rules naming "+ip)
			}
		}
	}
	return left
}

// hostLocalDirs are the directories host-local keeps the list's allocations in.
func hostLocalDirs(list *libcni.NetworkConfigList) []string {
	var dirs []string
	for _, p := range list.Plugins {
		var pj pluginJSON
		if json.Unmarshal(p.Bytes, &pj) == nil && pj.IPAM.Type == "host-local" && pj.IPAM.DataDir != "" {
			dirs = append(dirs, filepath.Join(pj.IPAM.DataDir, list.Name))
		}
	}
	return dirs
}

// cachedList returns the conflist and runtime config of an attachment's ADD:
// libcni's cache first, else the copy in the record (cached false).
func (m *Manager) cachedList(rec *record, rt *libcni.RuntimeConf) (*libcni.NetworkConfigList, *libcni.RuntimeConf, bool, error) {
	b, crt, err := m.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: rec.Network}, rt)
	if err == nil && len(b) > 0 {
		if list, err := libcni.ConfListFromBytes(b); err == nil {
			crt.NetNS = rt.NetNS
			return list, crt, true, nil
		}
	}
	list, err := libcni.ConfListFromBytes(rec.Conflist)
	if err != nil {
		return nil, nil, false, fmt.Errorf("recorded conflist of network %s: %w", rec.Network, err)
	}
	return list, rt, false, nil
}

// delWithoutCache helps the plugins that need the ADD result on DEL when
// libcni has none (hulld died between the plugins' ADD and libcni's cache
// write, or the cache was lost): the firewall plugin removes its rules only
// for the addresses in prevResult. The addresses come from the record, else
// from host-local's allocation files. The normal DEL follows.
func (m *Manager) delWithoutCache(ctx context.Context, list *libcni.NetworkConfigList, rec *record, rt *libcni.RuntimeConf) {
	var fw []*libcni.PluginConfig
	for _, p := range list.Plugins {
		if p.Network.Type == "firewall" {
			fw = append(fw, p)
		}
	}
	ips := rec.IPs
	if len(ips) == 0 {
		for _, dir := range hostLocalDirs(list) {
			ips = append(ips, hostLocalIPs(dir, rec.CNIID, rec.IfName)...)
		}
	}
	if len(fw) == 0 || len(ips) == 0 {
		return
	}
	var prev []map[string]string
	for _, ip := range ips {
		prev = append(prev, map[string]string{"address": ip})
	}
	for _, p := range fw {
		pc, err := libcni.InjectConf(p, map[string]any{
			"name": list.Name, "cniVersion": list.CNIVersion,
			"prevResult": map[string]any{"cniVersion": list.CNIVersion, "ips": prev},
		})
		if err == nil {
			err = m.cni.DelNetwork(ctx, pc, rt)
		}
		if err != nil {
			slog.Warn("network: firewall DEL without cached result", "id", rec.ID, "error", err)
		}
	}
}

// hostLocalIPs finds the addresses host-local allocated to a container
// (files named by the address, holding "<container id>\r\n<ifname>").
func hostLocalIPs(dir, containerID, ifName string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		addr, err := netip.ParseAddr(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Fields(string(b))
		if len(lines) == 0 || lines[0] != containerID || len(lines) > 1 && lines[1] != ifName {
			continue
		}
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()).String())
	}
	return out
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// checkPortsLocked checks host ports against other attachments, against
// ports other CNI users on the host publish, and against host sockets (a
// real bind). m.mu is held.
func (m *Manager) checkPortsLocked(ctx context.Context, id string, ports []PortMapping) error {
	var others []cniHostPort
	if len(ports) > 0 {
		mine := map[string]bool{}
		for oid := range m.active {
			mine[cniID(oid)] = true
		}
		for _, hp := range cniHostPorts(ctx) {
			if !mine[hp.id] {
				others = append(others, hp)
			}
		}
	}
	for _, p := range ports {
		// Published by someone else through portmap (another hulld, podman,
		// a CRI runtime): no socket to find, but a DNAT rule would steal
		// the traffic. Counted per port whatever the host IP.
		for _, o := range others {
			if o.proto == p.Protocol && o.lo <= p.HostPort && p.HostPort <= o.hi {
				return fmt.Errorf("%w: %s is published by container %s of CNI network %s outside this daemon", ErrPortInUse, p.hostAddr(), o.id, o.network)
			}
		}
		for oid, a := range m.active {
			if oid == id {
				continue
			}
			for _, q := range a.ports {
				if p.conflicts(q) {
					if a.detaching != nil {
						return &errDetaching{id: oid, ch: a.detaching}
					}
					return fmt.Errorf("%w: %s is published by container %s (%s)", ErrPortInUse, p.hostAddr(), oid, q)
				}
			}
		}
		if err := bindTest(p); err != nil {
			return err
		}
	}
	return nil
}

// bindTest binds the host address of a mapping and lets it go.
func bindTest(p PortMapping) error {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(int(p.HostPort)))
	var err error
	switch p.Protocol {
	case "udp":
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	default:
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EADDRINUSE):
		who := socketHolder(p)
		if who != "" {
			who = " (" + who + ")"
		}
		return fmt.Errorf("%w: %s is bound by a host process%s", ErrPortInUse, p.hostAddr(), who)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("%w %s: host IP %s is not an address of this host", ErrInvalidPort, p, ip)
	default:
		return fmt.Errorf("%w: %s: bind test: %v", ErrPortInUse, p.hostAddr(), err)
	}
}
