#!/usr/bin/env bash
# The wasiter Feature's install step: runs as root while the dev container's
# image is built, with the options as variables (FORWARDS, ROUTESFILE,
# RUNTIME, RUNTIMEVERSION, METRICS, LOGLEVEL). It also installs what the
# egress Feature's open and secrets use at start: wasiter-keys, and the
# launcher's keycheck.
#
# 1. Check the options that need no runtime (a bad one fails the build with
#    one line naming it).
# 2. Stage wasiter and its runtime in a fresh folder: wasiter's builds come
#    from this folder's artifacts/ (a packaged Feature carries them); the
#    runtime comes from artifacts/ too when it is there (offline, behind a
#    firewall), else from its pinned release archive, checked against the
#    SHA-256 pinned below. Never `curl | sh`.
# 3. Let wasiter itself check the forwards (`wasiter --check`, with the
#    runtime just staged: this also proves the runtime runs here).
# 4. Only then move the staged folder into place: a failed install leaves
#    nothing half-installed (the trap removes the stage).
# The forwards start with the container: the Feature's entrypoint runs
# `wasiter-service start` (see wasiter-service for why not postStartCommand).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lib=/usr/local/lib/wasiter      # wasiter, its runtime, the launcher
etc=/usr/local/etc/wasiter      # the settings the service reads at start
log=/var/log/wasiter.log

fail() { echo "wasiter feature: $*" >&2; exit 1; }
say() { echo "wasiter feature: $*" >&2; }

forwards=${FORWARDS:-}
routes_file=${ROUTESFILE:-}
runtime=${RUNTIME:-wasmedge}
version=${RUNTIMEVERSION:-}
metrics=${METRICS:-}
log_level=${LOGLEVEL:-info}

# --- 1. what can be checked before anything is fetched ---------------------
case $runtime in
  wasmedge|wasmtime|native) ;;
  *) fail "option runtime: \"$runtime\" is not one of wasmedge, wasmtime, native" ;;
esac
case $(uname -m) in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) fail "this machine is $(uname -m); the runtimes are pinned for x86_64 and aarch64 only" ;;
esac
if [[ -n $routes_file && $routes_file != /* ]]; then
  fail "option routesFile: \"$routes_file\" is not an absolute path; expected the file's path in the container, e.g. /workspaces/app/.devcontainer/wasiter.routes"
fi
case $routes_file in
  *[[:space:]]*) fail "option routesFile: \"$routes_file\" has a space; expected a path without one" ;;
esac

# The forwards option holds routes separated by commas, but a route's own
# upstreams and options contain commas too (8080=web1:80,web2:80): a new
# route starts only where a piece begins with [IP:]PORT=. A bare PORT means
# every IPv4 address of the container (wasiter's :PORT).
routes=()
IFS=',' read -r -a pieces <<<"$forwards"
for piece in "${pieces[@]}"; do
  piece=${piece#"${piece%%[![:space:]]*}"}; piece=${piece%"${piece##*[![:space:]]}"}
  [[ -z $piece ]] && continue
  if [[ $piece =~ ^([0-9]+)=(.*)$ ]]; then
    routes+=(":${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
  elif [[ $piece =~ ^(\[[0-9A-Fa-f:.]+\]|[0-9.]+)?:[0-9]+= ]]; then
    routes+=("$piece")
  elif ((${#routes[@]} > 0)); then
    routes[-1]+=",$piece"
  else
    fail "option forwards: \"$piece\" does not start with PORT= or IP:PORT=; expected e.g. 8080=127.0.0.1:3000,5432=db:5432"
  fi
done

# --- 2. stage wasiter and its runtime ---------------------------------------
mkdir -p /usr/local/lib
stage=$(mktemp -d /usr/local/lib/.wasiter-install.XXXXXX)
chmod 0755 "$stage"   # mktemp makes it private; the container user runs from it
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/runtime/bin" "$stage/runtime/lib"

# A file of this folder's artifacts/, checked against artifacts/SHA256SUMS
# (which scripts/feature writes with the builds). Prints its path, or
# nothing when the folder does not carry it.
artifact() {
  local name=$1 dir=$here/artifacts
  [[ -f $dir/$name ]] || return 0
  [[ -f $dir/SHA256SUMS ]] || fail "artifacts/$name has no artifacts/SHA256SUMS beside it to check it against"
  grep -q "  $name\$" "$dir/SHA256SUMS" || fail "artifacts/SHA256SUMS does not list $name"
  (cd "$dir" && grep "  $name\$" SHA256SUMS | sha256sum --check --status) \
    || fail "artifacts/$name does not match its SHA-256 in artifacts/SHA256SUMS (a damaged copy?)"
  echo "$dir/$name"
}

# The pinned release archives: URL and SHA-256 by runtime, version and
# machine (each digest as several independent projects pin that release).
# To allow another version, add it with its digest, checked against the
# release's own SHA256SUM (WasmEdge) or a download of your own.
pinned() {
  case $1-$2-$3 in
    wasmedge-0.17.1-x86_64) echo "https://github.com/WasmEdge/WasmEdge/releases/download/0.17.1/WasmEdge-0.17.1-manylinux_2_28_x86_64.tar.gz 27a1abec072ddf45b40e2e81e33c1e5fe9b241f31fd1bbf0182f05097489a07a" ;;
    wasmedge-0.17.1-aarch64) echo "https://github.com/WasmEdge/WasmEdge/releases/download/0.17.1/WasmEdge-0.17.1-manylinux_2_28_aarch64.tar.gz 6d7762429083e787ccbddf629868bb59de4325ccdcc31d9f7bd240adcdd9fe9d" ;;
    wasmtime-49.0.1-x86_64) echo "https://github.com/bytecodealliance/wasmtime/releases/download/v49.0.1/wasmtime-v49.0.1-x86_64-linux.tar.xz c71f7e0d30a92e418f0d17db7c6d8f6664c1ad764340a1278678f4209deab534" ;;
    wasmtime-49.0.1-aarch64) echo "https://github.com/bytecodealliance/wasmtime/releases/download/v49.0.1/wasmtime-v49.0.1-aarch64-linux.tar.xz 7607529c40fed69c0f5d2a6fafa8c560b9e3c18ded31d8f1b13098afe49b7480" ;;
  esac
}
default_version() { case $1 in wasmedge) echo 0.17.1 ;; wasmtime) echo 49.0.1 ;; esac; }

# Download a pinned archive into the stage and check its digest.
download() {
  local url=$1 sha=$2 out=$stage/download
  say "downloading $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 --connect-timeout 20 -o "$out" "$url" || fail "cannot download $url (offline? put the archive in the Feature's artifacts/)"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 20 -t 3 -O "$out" "$url" || fail "cannot download $url (offline? put the archive in the Feature's artifacts/)"
  else
    fail "neither curl nor wget is in the image to download $url; install one before this Feature, or put the archive in the Feature's artifacts/"
  fi
  echo "$sha  $out" | sha256sum --check --status || fail "$url does not match its pinned SHA-256 $sha: not installed"
  echo "$out"
}

# The runtime archive: from artifacts/ when the folder carries it, else the
# pinned download. Unpacked by finding files by name (release archives do
# not keep one layout across versions).
runtime_archive() {
  local name=$1 got
  got=$(artifact "$1-linux-$arch.tar.gz")
  [[ -z $got ]] && got=$(artifact "$1-linux-$arch.tar.xz")
  if [[ -n $got ]]; then
    say "$1 from the Feature folder (artifacts/${got##*/})"
    echo "$got"; return
  fi
  local v=${version:-$(default_version "$name")} entry
  entry=$(pinned "$name" "$v" "$arch")
  [[ -n $entry ]] || fail "option runtimeVersion: no SHA-256 is pinned for $name $v on $arch; expected $(default_version "$name") (or put the archive in the Feature's artifacts/)"
  local url sha
  read -r url sha <<<"$entry"
  download "$url" "$sha"
}
unpack_runtime() { # NAME: its archive, unpacked in the stage
  local archive
  archive=$(runtime_archive "$1")
  mkdir -p "$stage/unpack"
  tar -xf "$archive" -C "$stage/unpack" 2>/dev/null || fail "cannot unpack ${archive##*/} (xz archives need xz-utils in the image)"
}
stage_module() { # ARTIFACT: wasiter's build for a wasm runtime, into the stage
  local build
  build=$(artifact "$1")
  [[ -n $build ]] || fail "the Feature folder has no artifacts/$1: package it with scripts/feature"
  install -m 0644 "$build" "$stage/wasiter.wasm"
}

case $runtime in
  native)
    build=$(artifact "wasiter-linux-$arch")
    [[ -n $build ]] || fail "the Feature folder has no native build for $arch (artifacts/wasiter-linux-$arch); use runtime wasmedge or wasmtime, or package the Feature with scripts/feature on this kind of machine"
    install -m 0755 "$build" "$stage/wasiter"
    cmd=("$lib/wasiter") ;;
  wasmtime)
    stage_module wasiter-wasip2.wasm
    unpack_runtime wasmtime
    bin=$(find "$stage/unpack" -type f -name wasmtime | head -n 1)
    [[ -n $bin ]] || fail "the wasmtime archive has no wasmtime binary"
    install -m 0755 "$bin" "$stage/runtime/bin/wasmtime"
    cmd=("$lib/runtime/bin/wasmtime" run -S inherit-network -S allow-ip-name-lookup) ;;
  wasmedge)
    stage_module wasiter-wasip1.wasm
    unpack_runtime wasmedge
    bin=$(find "$stage/unpack" -type f -path '*/bin/wasmedge' | head -n 1)
    so=$(find "$stage/unpack" -name 'libwasmedge.so*' | head -n 1)
    [[ -n $bin && -n $so ]] || fail "the WasmEdge archive has no bin/wasmedge and libwasmedge.so"
    install -m 0755 "$bin" "$stage/runtime/bin/wasmedge"
    cp -a "$(dirname "$so")"/. "$stage/runtime/lib/"
    cmd=("$lib/runtime/bin/wasmedge") ;;
esac
rm -rf "$stage/unpack" "$stage/download"

# The launcher: wasiter on its runtime, with the arguments given. The wasm
# runtimes see only the folders named: /etc (resolv.conf and hosts, for
# names looked up in the loop) and those in WASITER_DIRS (the routes file's).
# Every way the Features start wasiter goes through it (wasiter-service, so
# the entrypoint and the egress Feature's proxy too, and `wasiter --check`),
# so it is where the descriptor limit is raised: a wasm runtime never raises
# the soft limit (Docker and systemd leave 1024 under a hard 524288) and a
# module cannot, nor ask for it (it is told in WASITER_NOFILE). The native
# build raises it itself.
write_launcher() {
  local module=$1 sep=: env=""
  [[ $runtime == wasmtime ]] && sep=::
  [[ $runtime == wasmedge ]] && env="export LD_LIBRARY_PATH=$lib/runtime/lib"
  if [[ $runtime == native ]]; then
    cat >"$stage/launch" <<EOF
#!/usr/bin/env bash
# Written by the wasiter Feature's install.sh: wasiter, native. keycheck
# checks a secrets file's mode and owner and makes a CA folder private.
# shellcheck source=/dev/null
. $(printf %q "$lib/keycheck")
exec $(printf %q "$lib/wasiter") "\$@"
EOF
  else
    cat >"$stage/launch" <<EOF
#!/usr/bin/env bash
# Written by the wasiter Feature's install.sh: wasiter on $runtime. The
# runtime lets it see only the folders named: /etc (resolv.conf and hosts,
# for the names it looks up; the system's roots in /etc/ssl), those in
# WASITER_DIRS (the routes file's) and those keycheck names (the CA's and
# the secrets file's, after checking the file's mode and owner, which WASI
# cannot show the module).
# shellcheck source=/dev/null
. $(printf %q "$lib/keycheck")
dirs=()
declare -A seen=()
for d in /etc \${WASITER_DIRS:-} "\${key_dirs[@]}"; do
  [[ -n \${seen[\$d]:-} ]] || dirs+=(--dir "\$d$sep\$d"); seen[\$d]=1
done
ulimit -n "\$(ulimit -Hn)" 2>/dev/null || true   # a client takes two descriptors
$env
exec$(printf ' %q' "${cmd[@]}") "\${dirs[@]}" "\${key_envs[@]}" --env "WASITER_NOFILE=\$(ulimit -n)" $(printf %q "$module") "\$@"
EOF
  fi
  chmod 0755 "$stage/launch"
}
install -m 0644 "$here/keycheck" "$stage/keycheck"
# The stage is checked from where it sits: point the launcher there for now.
real_lib=$lib; lib=$stage; cmd=("${cmd[@]/#$real_lib/$stage}")
write_launcher "$stage/wasiter.wasm"
"$stage/launch" --version >/dev/null 2>&1 || fail "$runtime does not run in this image: $("$stage/launch" --version 2>&1 | head -n 1)"

# --- 3. wasiter checks the options itself -----------------------------------
check() { # OPTION ARGS...: one line naming the option when wasiter refuses
  local option=$1 out; shift
  out=$("$stage/launch" --check "$@" 2>&1) || fail "option $option: $(echo "$out" | grep -m1 . | sed -e 's/^wasiter: //' -e 's/^--[a-z-]*: //')"
}
args=()
for r in "${routes[@]}"; do args+=(--route "$r"); done
((${#routes[@]} == 0)) || check forwards "${args[@]}"
[[ -z $metrics ]] || check metrics --route 127.0.0.1:1=127.0.0.1:1 --metrics "$metrics"
check logLevel --route 127.0.0.1:1=127.0.0.1:1 --log-level "$log_level"
# The egress Feature may have been installed first: check its route too.
if [[ -f $etc/egress.route ]]; then
  check "allow, deny, ports, toNet, parent or direct of wasiter-egress" --route "$(cat "$etc/egress.route")"
fi

# WasmEdge runs fastest compiled ahead of time; that takes a minute once.
module=$stage/wasiter.wasm
if [[ $runtime == wasmedge ]]; then
  say "compiling wasiter ahead of time for WasmEdge"
  if LD_LIBRARY_PATH=$stage/runtime/lib "$stage/runtime/bin/wasmedge" compile "$stage/wasiter.wasm" "$stage/wasiter.aot.wasm" >/dev/null 2>&1; then
    module=$stage/wasiter.aot.wasm; cmd+=(--run-mode=aot)
  else
    say "WasmEdge could not compile it ahead of time: wasiter runs in its interpreter (slower)"
  fi
fi

# --- 4. into place -----------------------------------------------------------
lib=$real_lib; cmd=("${cmd[@]/#$stage/$lib}")
write_launcher "${module/#$stage/$lib}"
rm -rf "$lib"
mv "$stage" "$lib"
trap - EXIT
ln -sf "$lib/launch" /usr/local/bin/wasiter
install -m 0755 "$here/wasiter-service" /usr/local/bin/wasiter-service
install -m 0755 "$here/wasiter-keys" /usr/local/bin/wasiter-keys
install -m 0755 "$here/wasiter-sidecar" /usr/local/bin/wasiter-sidecar
# Root's alone: the ask page's address with its token (docker exec -u root).
install -d -m 0755 /usr/local/sbin
install -m 0700 -o root -g root "$here/wasiter-admin-url" /usr/local/sbin/wasiter-admin-url
install -d /usr/local/share/wasiter
install -m 0755 "$here/entrypoint" /usr/local/share/wasiter/entrypoint

mkdir -p "$etc"
{
  echo "# Written by the wasiter Feature's install.sh; read by wasiter-service at start."
  printf 'RUNTIME=%q\n' "$runtime"
  printf 'ROUTES_FILE=%q\n' "$routes_file"
  printf 'METRICS=%q\n' "$metrics"
  printf 'LOG_LEVEL=%q\n' "$log_level"
  printf 'ROUTES=('; for r in "${routes[@]}"; do printf ' %q' "$r"; done; printf ' )\n'
} >"$etc/wasiter.conf"

# The log, writable by the user the container runs as (who runs the
# entrypoint).
touch "$log"
user=${_CONTAINER_USER:-root}
if [[ $user != root ]] && id "$user" >/dev/null 2>&1; then chown "$user" "$log"; fi

# The egress Feature's open, secrets or ask, installed first: warn now about
# a sandbox user who could read the keys or the admin token (wasiter-keys
# warns at each start too).
[[ ! -f $etc/keys.conf && ! -f $etc/ask.conf ]] || wasiter-keys sudo || true

say "installed: $("$lib/launch" --version 2>/dev/null) on $runtime; ${#routes[@]} forward(s)${routes_file:+, routes file $routes_file}; log $log"
