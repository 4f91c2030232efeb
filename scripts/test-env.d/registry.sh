# Sourced by scripts/test.sh and scripts/bench.sh: starts Debian's
# docker-registry on 127.0.0.1 with temporary storage for the image tests and
# benchmarks, exports HULL_TEST_REGISTRY=127.0.0.1:PORT, and stops it on exit.
# Skipped when HULL_TEST_REGISTRY is already set (a registry you run yourself).

hull_registry_start() {
  if [ -n "${HULL_TEST_REGISTRY:-}" ]; then
    return 0
  fi
  if [ ! -x /usr/bin/docker-registry ]; then
    echo "registry.sh: /usr/bin/docker-registry missing (apt-get install docker-registry); image tests will skip" >&2
    return 0
  fi
  local port=5000
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  HULL_REGISTRY_DIR=$(mktemp -d /tmp/hull-registry.XXXXXX)
  cat >"$HULL_REGISTRY_DIR/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $HULL_REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
  /usr/bin/docker-registry serve "$HULL_REGISTRY_DIR/config.yml" >"$HULL_REGISTRY_DIR/log" 2>&1 &
  HULL_REGISTRY_PID=$!
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$HULL_REGISTRY_PID" 2>/dev/null; then
      echo "registry.sh: docker-registry exited:" >&2
      cat "$HULL_REGISTRY_DIR/log" >&2
      return 1
    fi
    sleep 0.1
  done
  export HULL_TEST_REGISTRY="127.0.0.1:$port"
  echo "registry.sh: docker-registry on $HULL_TEST_REGISTRY (pid $HULL_REGISTRY_PID)" >&2
  # Chain onto whatever EXIT trap is already set.
  local prev
  prev=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
  # shellcheck disable=SC2064
  trap "hull_registry_stop; ${prev:-:}" EXIT
}

hull_registry_stop() {
  if [ -n "${HULL_REGISTRY_PID:-}" ]; then
    kill "$HULL_REGISTRY_PID" 2>/dev/null || true
    wait "$HULL_REGISTRY_PID" 2>/dev/null || true
    HULL_REGISTRY_PID=
  fi
  if [ -n "${HULL_REGISTRY_DIR:-}" ]; then
    rm -rf "$HULL_REGISTRY_DIR"
    HULL_REGISTRY_DIR=
  fi
}

hull_registry_start
