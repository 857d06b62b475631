#!/usr/bin/env bash
# The wasiter-egress Feature's install step (root, during the image build;
# options as ALLOW, DENY, PORTS, TONET): write the forward-proxy route that
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

allow=${ALLOW:-}; deny=${DENY:-}; ports=${PORTS:-}; to_net=${TONET:-}
allow=${allow//[[:space:]]/}; deny=${deny//[[:space:]]/}; ports=${ports//[[:space:]]/}; to_net=${to_net//[[:space:]]/}
[[ -n $allow ]] || fail "option allow is empty; expected the names the container may reach, comma-separated, e.g. pypi.org,*.github.com (or * for any)"
for pair in allow:allow deny:deny ports:ports toNet:to_net; do
  var=${pair#*:}; value=${!var}
  [[ $value != *";"* ]] || fail "option ${pair%%:*}: \"$value\" has a ';'; expected a comma-separated list"
done

at=127.0.0.1:3128
route="$at=forward;to=$allow"
[[ -z $deny ]] || route+=";not-to=$deny"
[[ -z $ports ]] || route+=";ports=$ports"
[[ -z $to_net ]] || route+=";to-net=$to_net"

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
fi

mkdir -p "$etc"
echo "$route" >"$etc/egress.route"
echo "wasiter-egress feature: the container's way out is http://$at, to: $allow${deny:+, not to: $deny}${ports:+, ports: $ports}${to_net:+, addresses: $to_net}" >&2
