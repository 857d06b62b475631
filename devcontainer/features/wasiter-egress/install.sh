#!/usr/bin/env bash
# The wasiter-egress Feature's install step (root, during the image build;
# options as ALLOW, DENY, PORTS, TONET, PARENT, DIRECT, LOCKDOWN): write the
# forward-proxy route that wasiter-service adds when the container starts,
# and for LOCKDOWN the lock-down's settings, its script and the user the
# proxy runs as (whose packets alone may leave). The proxy listens on
# 127.0.0.1:3128, the address this Feature's containerEnv gives HTTP_PROXY
# and HTTPS_PROXY (containerEnv is fixed text, so the port is too).
#
# The wasiter Feature runs it; the two may install in either order, so
# whichever installs second lets wasiter check this route (`--check`): here
# when wasiter is already installed, else in wasiter's install.sh.
set -euo pipefail

etc=/usr/local/etc/wasiter
launch=/usr/local/lib/wasiter/launch
fail() { echo "wasiter-egress feature: $*" >&2; exit 1; }

lockdown=${LOCKDOWN:-false}
allow=${ALLOW:-}; deny=${DENY:-}; ports=${PORTS:-}; opaque=${OPAQUE:-}; to_net=${TONET:-}; parent=${PARENT:-}; direct=${DIRECT:-}
allow=${allow//[[:space:]]/}; deny=${deny//[[:space:]]/}; ports=${ports//[[:space:]]/}; opaque=${opaque//[[:space:]]/}; to_net=${to_net//[[:space:]]/}
parent=${parent//[[:space:]]/}; direct=${direct//[[:space:]]/}
[[ -n $allow ]] || fail "option allow is empty; expected the names the container may reach, comma-separated, e.g. pypi.org,*.github.com (or * for any)"
[[ -z $direct || -n $parent ]] || fail "option direct names what skips the parent: it needs the option parent (http://HOST:PORT)"
for pair in allow:allow deny:deny ports:ports opaque:opaque toNet:to_net parent:parent direct:direct; do
  var=${pair#*:}; value=${!var}
  [[ $value != *";"* ]] || fail "option ${pair%%:*}: \"$value\" has a ';'; expected a comma-separated list"
done

at=127.0.0.1:3128
route="$at=forward;to=$allow"
[[ -z $deny ]] || route+=";not-to=$deny"
[[ -z $ports ]] || route+=";ports=$ports"
[[ -z $opaque ]] || route+=";opaque=$opaque"
[[ -z $to_net ]] || route+=";to-net=$to_net"
[[ -z $parent ]] || route+=";parent=$parent"
[[ -z $direct ]] || route+=";direct=$direct"

if [[ -x $launch ]]; then
  check() { # OPTION ROUTE
    local out
    out=$("$launch" --check --route "$2" 2>&1) \
      || fail "option $1: $(echo "$out" | grep -m1 . | sed -e 's/^wasiter: --route: //' -e 's/; expected LISTEN=.*//')"
  }
  check allow "$at=forward;to=$allow"
  [[ -z $deny ]] || check deny "$at=forward;to=*;not-to=$deny"
  [[ -z $ports ]] || check ports "$at=forward;to=*;ports=$ports"
  [[ -z $opaque ]] || check opaque "$at=forward;to=*;opaque=$opaque"
  [[ -z $to_net ]] || check toNet "$at=forward;to=*;to-net=$to_net"
  [[ -z $parent ]] || check parent "$at=forward;to=*;parent=$parent"
  [[ -z $direct ]] || check direct "$at=forward;to=*;parent=http://parent:3128;direct=$direct"
fi

mkdir -p "$etc"
echo "$route" >"$etc/egress.route"
rm -f "$etc/lockdown.conf"
if [[ $lockdown == true ]]; then
  # The allowlist options the transparent listeners and the DNS server share.
  policy="to=$allow"
  [[ -z $deny ]] || policy+=";not-to=$deny"
  [[ -z $to_net ]] || policy+=";to-net=$to_net"
  through=""
  [[ -z $parent ]] || through="parent=$parent"
  [[ -z $direct ]] || through+=";direct=$direct"
  if ! command -v nft >/dev/null; then
    command -v apt-get >/dev/null || fail "option lockdown needs nft (nftables) in the image, and this image has no apt-get to install it"
    # Not through this Feature's own proxy: its containerEnv already applies
    # to the build, and nothing listens there until the container starts.
    unset HTTP_PROXY http_proxy HTTPS_PROXY https_proxy ALL_PROXY all_proxy
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables >/dev/null; } \
      || fail "option lockdown: cannot install nftables"
  fi
  # Its home holds what a runtime caches (wasmtime compiles the module there).
  id -u wasiter >/dev/null 2>&1 || useradd --system --home-dir /var/lib/wasiter --create-home --shell /usr/sbin/nologin wasiter \
    || fail "option lockdown: cannot create the user wasiter, whose packets alone may leave"
  install -m 0755 "$(dirname "$0")/wasiter-lockdown" /usr/local/bin/wasiter-lockdown
  printf 'PROXY_USER=wasiter\nPOLICY=%q\nTHROUGH=%q\n' "$policy" "$through" >"$etc/lockdown.conf"
  echo "wasiter-egress feature: lockdown: at start, DNS, HTTP and HTTPS go through wasiter and every other packet is dropped (needs --cap-add=NET_ADMIN; review: wasiter-lockdown rules)" >&2
fi
echo "wasiter-egress feature: the container's way out is http://$at, to: $allow${deny:+, not to: $deny}${ports:+, ports: $ports}${opaque:+, opaque: $opaque}${to_net:+, addresses: $to_net}${parent:+, through the parent ${parent#*@}}${direct:+ (direct: $direct)}" >&2
