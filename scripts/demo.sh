#!/usr/bin/env bash
# make demo: one nginx image run twice by a private hulld, natively
# (namespaces and cgroups on this kernel) and in a VM (QEMU with Hull's
# guest kernel), each with a published port; both pages are fetched with
# curl and the two are compared side by side: time from `hull run -d` to
# the first HTTP 200, host memory, and the kernel each one sees. Everything
# the demo starts is removed on exit, on success or failure.
#
# Environment (make demo passes its variables through):
#   IMAGE               pull this image instead of the one built from Debian's
#                       packages (e.g. docker.io/library/nginx:latest; needs
#                       the network to reach the registry)
#   DEMO_IMAGE_TAR      the built image (make demo-image; build/images/nginx.tar)
#   DEMO_PORT_NATIVE    host port of the native container (8080)
#   DEMO_PORT_VM        host port of the vm container (8081)
#   DEMO_TIMEOUT_NATIVE, DEMO_TIMEOUT_VM   seconds to wait for a page (30, 180)
#   DEMO_SUBNET, DEMO_BRIDGE   the private default network (a /24: 10.231.47.0/24; hulldemo0)
#   HULL_BIN, HULL_GUEST_DIR   binaries and guest assets (bin/, build/guest)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${HULL_BIN:-$REPO/bin}
GUEST_DIR=${HULL_GUEST_DIR:-$REPO/build/guest}
IMAGE=${IMAGE:-}
IMAGE_TAR=${DEMO_IMAGE_TAR:-$REPO/build/images/nginx.tar}
PORT_NATIVE=${DEMO_PORT_NATIVE:-8080}
PORT_VM=${DEMO_PORT_VM:-8081}
TIMEOUT_NATIVE=${DEMO_TIMEOUT_NATIVE:-30}
TIMEOUT_VM=${DEMO_TIMEOUT_VM:-180}
SUBNET=${DEMO_SUBNET:-10.231.47.0/24}
BRIDGE=${DEMO_BRIDGE:-hulldemo0}
HOST=127.0.0.1
CNATIVE=web-native
CVM=web-vm

say() { printf '%s\n' "$*"; }
die() {
  printf 'make demo: %s\n' "$*" >&2
  exit 1
}

# --- preconditions: each with the fix in its message ------------------------
[ "$(id -u)" = 0 ] || die "it runs containers and VMs: run it as root"
for b in hull hulld containerd-shim-hull-v2 hull-runtime; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make build"
done
for f in bzImage agent.cpio; do
  [ -e "$GUEST_DIR/$f" ] || die "guest asset $GUEST_DIR/$f is missing: run make build (it builds the guest kernel the first time)"
done
for t in curl ss ip; do
  command -v "$t" >/dev/null || die "$t is missing: run make deps"
done
[[ $PORT_NATIVE =~ ^[0-9]+$ && $PORT_VM =~ ^[0-9]+$ ]] || die "DEMO_PORT_NATIVE=$PORT_NATIVE and DEMO_PORT_VM=$PORT_VM must be port numbers"
[ "$PORT_NATIVE" != "$PORT_VM" ] || die "DEMO_PORT_NATIVE and DEMO_PORT_VM are both $PORT_NATIVE: give two different ports"
for p in "$PORT_NATIVE" "$PORT_VM"; do
  if [ -n "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then
    die "port $p is already in use on this host ($(ss -Htlnp "sport = :$p" | awk '{print $NF}' | head -1)): free it, or choose others with make demo DEMO_PORT_NATIVE=... DEMO_PORT_VM=..."
  fi
done
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  die "a network interface named $BRIDGE exists already (another demo running?): remove it or set DEMO_BRIDGE"
fi
if ip -4 route show 2>/dev/null | grep -q "^${SUBNET%/*}/"; then
  die "the demo's subnet $SUBNET is routed on this host already: choose another with DEMO_SUBNET=..."
fi
if [ -z "$IMAGE" ] && [ ! -s "$IMAGE_TAR" ]; then
  die "$IMAGE_TAR is missing: run make demo-image (make demo does)"
fi

# --- a private hulld ----------------------------------------------------------
DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hull-demo.XXXXXX")
SOCK=$DEMO_DIR/hulld.sock
HULLD_PID=
iptables_before=$(for t in nat filter; do iptables-save -t $t 2>/dev/null | grep -oE '^:CNI-[A-Z-]+' | sed "s/^:/$t:/"; done || true)

hull() { "$BIN/hull" --address "$SOCK" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$HULLD_PID" ] && kill -0 "$HULLD_PID" 2>/dev/null; then
    hull containers rm -f "$CNATIVE" "$CVM" >/dev/null 2>&1
    hull containers rm -f "$CVM" >/dev/null 2>&1
    kill -TERM "$HULLD_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$HULLD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HULLD_PID" 2>/dev/null
    wait "$HULLD_PID" 2>/dev/null
  fi
  # Shims of this daemon that outlived it (a failed delete): theirs are
  # the only processes naming this socket.
  local p
  for p in $(pgrep -f -- "-address $SOCK" 2>/dev/null); do
    kill -KILL "$p" 2>/dev/null
  done
  ip link del "$BRIDGE" >/dev/null 2>&1
  # The CNI plugins' shared chains, if this demo made them and no
  # container's rule is left in them.
  local table c
  for table in nat filter; do
    for c in $(iptables-save -t "$table" 2>/dev/null | grep -oE '^:CNI-(HOSTPORT-[A-Z]+|FORWARD|ADMIN)' | tr -d :); do
      grep -qx "$table:$c" <<<"$iptables_before" && continue
      iptables -t "$table" -S "$c" 2>/dev/null | grep -qE -- '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|-j CNI-DN-|id: ' && continue
      iptables -t "$table" -S | grep -E -- "^-A .* -j $c( |\$)" | sed 's/^-A/-D/' | while read -r rule; do
        eval "iptables -t $table $rule" 2>/dev/null
      done
      iptables -t "$table" -F "$c" 2>/dev/null
      iptables -t "$table" -X "$c" 2>/dev/null
    done
  done
  grep -o " $DEMO_DIR[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$DEMO_DIR"
  local left=()
  [ -z "$(pgrep -f -- "$DEMO_DIR" 2>/dev/null)" ] || left+=("processes")
  ! grep -q " $DEMO_DIR" /proc/mounts || left+=("mounts")
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || left+=("bridge $BRIDGE")
  # (a /24 or smaller subnet: its addresses share the first three octets)
  ! iptables-save 2>/dev/null | grep -qF -- "${SUBNET%.*}." || left+=("iptables rules for $SUBNET")
  if [ ${#left[@]} -gt 0 ]; then
    echo "make demo: left behind: ${left[*]}" >&2
    [ "$rc" != 0 ] || rc=1
  elif [ "$rc" = 0 ]; then
    say "Removed both containers, the daemon and its files; nothing left behind."
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$DEMO_DIR/hulld.toml" <<EOF
root = "$DEMO_DIR/root"
state = "$DEMO_DIR/state"
address = "$SOCK"
log_level = "warn"

[network]
conf_dir = "$DEMO_DIR/net.d"
subnet = "$SUBNET"
bridge = "$BRIDGE"

[runtimes.vm]
type = "io.containerd.hull.v2"
options = { mode = "vm", backend = { guest_dir = "$GUEST_DIR" } }
EOF
PATH=$BIN:$PATH HULL_GUEST_DIR=$GUEST_DIR "$BIN/hulld" --config "$DEMO_DIR/hulld.toml" >"$DEMO_DIR/hulld.log" 2>&1 &
HULLD_PID=$!
for _ in $(seq 1 100); do
  [ -S "$SOCK" ] && hull info >/dev/null 2>&1 && break
  kill -0 "$HULLD_PID" 2>/dev/null || die "hulld did not start: $(tail -5 "$DEMO_DIR/hulld.log")"
  sleep 0.1
done
hull info >/dev/null 2>&1 || die "hulld does not answer at $SOCK: $(tail -5 "$DEMO_DIR/hulld.log")"

# --- the image ------------------------------------------------------------------
if [ -n "$IMAGE" ]; then
  say "Pulling $IMAGE ..."
  if ! out=$(hull images pull "$IMAGE" 2>&1); then
    die "cannot pull $IMAGE: ${out##*$'\n'}
  (no route to its registry here?) Without IMAGE=, make demo builds nginx from Debian's packages offline."
  fi
  REF=$IMAGE
  IMAGE_DESC="$IMAGE (pulled)"
else
  out=$(hull images import "$IMAGE_TAR") || die "import of $IMAGE_TAR failed"
  REF=${out%%:\ sha256:*}
  IMAGE_DESC="$REF (built from Debian packages by hull-mkimage, $(du -h "$IMAGE_TAR" | cut -f1) compressed)"
fi
say "Image: $IMAGE_DESC"

# --- run and time ---------------------------------------------------------------
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# container logs and (vm) the guest console, for a failure message
diagnose() {
  local id=$1
  echo "--- hull logs $id (last 20 lines)" >&2
  hull logs "$id" 2>&1 | tail -20 >&2
  local con
  con=$(find "$DEMO_DIR/state" -path "*$id*" \( -name '*console*' -o -name '*serial*' \) -type f 2>/dev/null | head -1)
  if [ -n "$con" ]; then
    echo "--- guest console $con (last 30 lines)" >&2
    tail -30 "$con" >&2
  fi
  echo "--- hulld log (last 10 lines)" >&2
  tail -10 "$DEMO_DIR/hulld.log" >&2
}

# start ID PORT TIMEOUT [run flags...]: prints the ms from run -d to the
# first 200 and leaves the page in $DEMO_DIR/ID.html.
start() {
  local id=$1 port=$2 timeout=$3
  shift 3
  local t0 t1 deadline code
  t0=$(now_ms)
  if ! hull run -d -p "$port:80" "$@" "$REF" "$id" >"$DEMO_DIR/$id.run" 2>&1; then
    cat "$DEMO_DIR/$id.run" >&2
    diagnose "$id"
    die "hull run $* $REF $id failed"
  fi
  deadline=$((t0 + timeout * 1000))
  while :; do
    code=$(curl -s -o "$DEMO_DIR/$id.html" -w '%{http_code}' --max-time 2 "http://$HOST:$port/" 2>/dev/null || true)
    [ "$code" = 200 ] && break
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diagnose "$id"
      die "no HTTP 200 from $id at http://$HOST:$port/ within ${timeout}s (last answer: ${code:-none})"
    fi
    sleep 0.05
  done
  t1=$(now_ms)
  echo $((t1 - t0))
}

say "Starting nginx natively (hull run -d -p $PORT_NATIVE:80 $REF $CNATIVE) ..."
MS_NATIVE=$(start "$CNATIVE" "$PORT_NATIVE" "$TIMEOUT_NATIVE")
say "Starting nginx in a VM (hull run -d --runtime vm -p $PORT_VM:80 $REF $CVM) ..."
MS_VM=$(start "$CVM" "$PORT_VM" "$TIMEOUT_VM" --runtime vm)

# --- measure --------------------------------------------------------------------
# pss PID...: summed proportional set size in KiB
pss() {
  local p sum=0 v
  for p in "$@"; do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
# descendants PID: all processes below PID
descendants() {
  local kids k
  kids=$(pgrep -P "$1" 2>/dev/null || true)
  for k in $kids; do
    echo "$k"
    descendants "$k"
  done
}
shim_of() { pgrep -f -- "-id $1 -address $SOCK" | head -1; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

# breakdown ID: "name KiB" per process kind below its shim, and the shim
breakdown() {
  local shim p
  shim=$(shim_of "$1")
  [ -n "$shim" ] || return 0
  for p in $(descendants "$shim"); do
    printf '%s %s\n' "$(cat "/proc/$p/comm" 2>/dev/null || echo '?')" "$(pss "$p")"
  done
  printf 'shim %s\n' "$(pss "$shim")"
}
summarize() { # reads "name KiB" lines; prints total and "name X MiB + ..."
  awk '{k[$1] += $2; t += $2; if (!($1 in seen)) {seen[$1] = 1; order[n++] = $1}}
       END {printf "%d|", t; for (i = 0; i < n; i++) printf "%s%s %.1f", (i ? " + " : ""), order[i], k[order[i]] / 1024; print ""}'
}
IFS='|' read -r KB_NATIVE PARTS_NATIVE < <(breakdown "$CNATIVE" | summarize)
IFS='|' read -r KB_VM PARTS_VM < <(breakdown "$CVM" | summarize)

kernel() { hull exec "$1" uname -r 2>/dev/null | tr -d '\r' || echo "?"; }
K_NATIVE=$(kernel "$CNATIVE")
K_VM=$(kernel "$CVM")
title() { grep -o '<title>[^<]*' "$DEMO_DIR/$1.html" | head -1 | sed 's/<title>//'; }
ACCEL=$(for p in $(descendants "$(shim_of "$CVM")"); do tr '\0' ' ' <"/proc/$p/cmdline"; done 2>/dev/null |
  grep -oE -- '-accel [a-z]+|accel=[a-z]+' | head -1 | grep -oE '[a-z]+$' || true)

# --- side by side -------------------------------------------------------------------
say ""
hull containers ls
say ""
fmt='  %-20s %-38s %s\n'
# shellcheck disable=SC2059
{
  printf "$fmt" "" "native" "vm"
  printf "$fmt" "runtime" "hull-runtime (namespaces, cgroups)" "QEMU${ACCEL:+ ($ACCEL)} + Hull's guest kernel"
  printf "$fmt" "curl" "http://$HOST:$PORT_NATIVE/ -> 200" "http://$HOST:$PORT_VM/ -> 200"
  printf "$fmt" "page title" "$(title "$CNATIVE")" "$(title "$CVM")"
  printf "$fmt" "run -d -> first 200" "$(awk -v m="$MS_NATIVE" 'BEGIN {printf "%.2f s", m / 1000}')" "$(awk -v m="$MS_VM" 'BEGIN {printf "%.2f s", m / 1000}')"
  printf "$fmt" "host memory (PSS)" "$(mib "${KB_NATIVE:-0}")" "$(mib "${KB_VM:-0}")"
  printf "$fmt" "  made of (MiB)" "${PARTS_NATIVE:-?}" "${PARTS_VM:-?}"
  printf "$fmt" "kernel (uname -r)" "$K_NATIVE" "$K_VM"
}
say ""
say "(host kernel: $(uname -r); memory is the summed PSS from /proc/PID/smaps_rollup of every process below the container's shim, and the shim)"
