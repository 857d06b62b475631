#!/usr/bin/env bash
# The wasiter-egress Feature's install step (root, during the image build;
# options as ALLOW, DENY, PORTS, TONET, PARENT, DIRECT): write the forward-proxy route that
# wasiter-service adds when the container starts. The proxy listens on
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

allow=${ALLOW:-}; deny=${DENY:-}; ports=${PORTS:-}; to_net=${TONET:-}; parent=${PARENT:-}; direct=${DIRECT:-}
allow=${allow//[[:space:]]/}; deny=${deny//[[:space:]]/}; ports=${ports//[[:space:]]/}; to_net=${to_net//[[:space:]]/}
parent=${parent//[[:space:]]/}; direct=${direct//[[:space:]]/}
[[ -n $allow ]] || fail "option allow is empty; expected the names the container may reach, comma-separated, e.g. pypi.org,*.github.com (or * for any)"
[[ -z $direct || -n $parent ]] || fail "option direct names what skips the parent: it needs the option parent (http://HOST:PORT)"
for pair in allow:allow deny:deny ports:ports toNet:to_net parent:parent direct:direct; do
  var=${pair#*:}; value=${!var}
  [[ $value != *";"* ]] || fail "option ${pair%%:*}: \"$value\" has a ';'; expected a comma-separated list"
done

at=127.0.0.1:3128
route="$at=forward;to=$allow"
[[ -z $deny ]] || route+=";not-to=$deny"
[[ -z $ports ]] || route+=";ports=$ports"
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
  [[ -z $to_net ]] || check toNet "$at=forward;to=*;to-net=$to_net"
  [[ -z $parent ]] || check parent "$at=forward;to=*;parent=$parent"
  [[ -z $direct ]] || check direct "$at=forward;to=*;parent=http://parent:3128;direct=$direct"
fi

mkdir -p "$etc"
echo "$route" >"$etc/egress.route"
echo "wasiter-egress feature: the container's way out is http://$at, to: $allow${deny:+, not to: $deny}${ports:+, ports: $ports}${to_net:+, addresses: $to_net}${parent:+, through the parent ${parent#*@}}${direct:+ (direct: $direct)}" >&2
