#!/usr/bin/env bash
# The wasiter-egress Feature's install step (root, during the image build;
# options as ALLOW, DENY, PORTS, TONET, PARENT, DIRECT, LOCKDOWN, ASK, ...):
# write the forward-proxy route that wasiter-service adds when the container
# starts, for LOCKDOWN the lock-down's settings, its script and the user the
# proxy runs as (whose packets alone may leave), and for ASK the admin
# page's settings (ask.conf: its port, the token only that user may read). The proxy listens on
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
ask=${ASK:-false}; ask_timeout=${ASKTIMEOUT:-}; admin_port=${ADMINPORT:-3130}
ask_timeout=${ask_timeout//[[:space:]]/}; admin_port=${admin_port//[[:space:]]/}
open=${OPEN:-}; allow_http=${ALLOWHTTP:-}; secrets=${SECRETS:-}; ca_dir=${CADIR:-}
open=${open//[[:space:]]/}; allow_http=${allow_http//[[:space:]]/}
allow=${ALLOW:-}; deny=${DENY:-}; ports=${PORTS:-}; opaque=${OPAQUE:-}; to_net=${TONET:-}; parent=${PARENT:-}; direct=${DIRECT:-}
allow=${allow//[[:space:]]/}; deny=${deny//[[:space:]]/}; ports=${ports//[[:space:]]/}; opaque=${opaque//[[:space:]]/}; to_net=${to_net//[[:space:]]/}
parent=${parent//[[:space:]]/}; direct=${direct//[[:space:]]/}
[[ -n $allow || $ask == true ]] || fail "option allow is empty; expected the names the container may reach, comma-separated, e.g. pypi.org,*.github.com (or * for any), or ask: true to start empty and ask a person"
[[ -z $ask_timeout || $ask == true ]] || fail "option askTimeout is how long a client is held for a person's answer: it needs the option ask"
if [[ $ask == true ]]; then
  if ! [[ $admin_port =~ ^[0-9]{1,5}$ ]] || ((10#$admin_port < 1 || 10#$admin_port > 65535)); then
    fail "option adminPort: \"$admin_port\" is not a port; expected 1 to 65535, e.g. 3130"
  fi
  admin_port=$((10#$admin_port))
  case $admin_port in
    3128|3180|3443|3053) fail "option adminPort: $admin_port is the egress proxy's own (3128, 3180, 3443 and 3053 are taken); expected another, e.g. 3130" ;;
  esac
fi
[[ -z $direct || -n $parent ]] || fail "option direct names what skips the parent: it needs the option parent (http://HOST:PORT)"
[[ -z $secrets || -n $open ]] || fail "option secrets needs the option open: the names whose TLS wasiter opens, where it swaps placeholders for values"
for pair in secrets:secrets caDir:ca_dir; do
  var=${pair#*:}; value=${!var}
  [[ -z $value || $value == /* ]] || fail "option ${pair%%:*}: \"$value\" is not an absolute path; expected a path in the container, e.g. /var/lib/wasiter/host/secrets"
  [[ $value != *[[:space:]]* ]] || fail "option ${pair%%:*}: \"$value\" has a space; expected a path without one"
done
for pair in allow:allow deny:deny ports:ports opaque:opaque toNet:to_net parent:parent direct:direct open:open allowHttp:allow_http askTimeout:ask_timeout; do
  var=${pair#*:}; value=${!var}
  [[ $value != *";"* ]] || fail "option ${pair%%:*}: \"$value\" has a ';'; expected a comma-separated list"
done

at=127.0.0.1:3128
# ask: a name allow does not list is held while a person answers on the
# admin page (once, session, forever, deny), on every route written here.
asking=""
[[ $ask != true ]] || asking="ask${ask_timeout:+;ask-timeout=$ask_timeout}"
route="$at=forward${allow:+;to=$allow}"
[[ -z $deny ]] || route+=";not-to=$deny"
[[ -z $ports ]] || route+=";ports=$ports"
[[ -z $opaque ]] || route+=";opaque=$opaque"
[[ -z $to_net ]] || route+=";to-net=$to_net"
[[ -z $parent ]] || route+=";parent=$parent"
[[ -z $direct ]] || route+=";direct=$direct"
[[ -z $open ]] || route+=";open=$open"
[[ -z $allow_http ]] || route+=";allow-http=$allow_http"
[[ -z $asking ]] || route+=";$asking"

if [[ -x $launch ]]; then
  check() { # OPTION ROUTE
    local out
    out=$("$launch" --check --route "$2" 2>&1) \
      || fail "option $1: $(echo "$out" | grep -m1 . | sed -e 's/^wasiter: --route: //' -e 's/; expected LISTEN=.*//')"
  }
  [[ -z $allow ]] || check allow "$at=forward;to=$allow"
  [[ -z $ask_timeout ]] || check askTimeout "$at=forward;$asking"
  [[ -z $deny ]] || check deny "$at=forward;to=*;not-to=$deny"
  [[ -z $ports ]] || check ports "$at=forward;to=*;ports=$ports"
  [[ -z $opaque ]] || check opaque "$at=forward;to=*;opaque=$opaque"
  [[ -z $to_net ]] || check toNet "$at=forward;to=*;to-net=$to_net"
  [[ -z $parent ]] || check parent "$at=forward;to=*;parent=$parent"
  [[ -z $direct ]] || check direct "$at=forward;to=*;parent=http://parent:3128;direct=$direct"
  [[ -z $open ]] || check open "$at=forward;to=*;open=$open"
  [[ -z $allow_http ]] || check allowHttp "$at=forward;to=*;allow-http=$allow_http"
fi

mkdir -p "$etc"
echo "$route" >"$etc/egress.route"
rm -f "$etc/lockdown.conf"
if [[ $lockdown == true ]]; then
  # The allowlist options the transparent listeners and the DNS server share.
  policy=""
  [[ -z $allow ]] || policy="to=$allow"
  [[ -z $deny ]] || policy+=";not-to=$deny"
  [[ -z $to_net ]] || policy+=";to-net=$to_net"
  [[ -z $asking ]] || policy+=";$asking"
  policy=${policy#;}
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
rm -f "$etc/keys.conf" "$etc/ask.conf" /etc/profile.d/wasiter-keys.sh
# The sandbox's user: the one the dev container tools run commands as
# (remoteUser, which defaults to the user the container starts as).
users=${_REMOTE_USER:-${_CONTAINER_USER:-root}}
# What the sandbox's shells read: the roots and placeholders (open), and
# the warning for a user who could read what is kept from it (open, ask).
shell_profile() {
  install -m 0644 "$(dirname "$0")/wasiter-keys.sh" /etc/profile.d/wasiter-keys.sh
  # Shells that read no profile: bash's interactive ones, and zsh.
  for rc in /etc/bash.bashrc /etc/bash/bashrc /etc/zsh/zshenv; do
    if [[ -f $rc ]] && ! grep -q wasiter-keys "$rc"; then
      # shellcheck disable=SC2016  # expanded by the shell that reads it
      echo '[ -r /etc/profile.d/wasiter-keys.sh ] && [ -z "${SSL_CERT_FILE:-}" ] && . /etc/profile.d/wasiter-keys.sh' >>"$rc"
    fi
  done
}
proxy_user() { # OPTION WHAT: the user wasiter, made when missing
  id -u wasiter >/dev/null 2>&1 || useradd --system --home-dir /var/lib/wasiter --create-home --shell /usr/sbin/nologin wasiter \
    || adduser -S -D -H -h /var/lib/wasiter -s /sbin/nologin wasiter \
    || fail "option $1: cannot create the user wasiter, which alone may read $2"
  install -d -m 0700 -o wasiter -g "$(id -gn wasiter)" /var/lib/wasiter
}
if [[ $ask == true ]]; then
  # Ask a person: the admin page on the container's loopback, answered with
  # a token only the user wasiter (and root) may read; the routes live in a
  # file that user may write (forever answers are written into it) and the
  # sandbox may only read. wasiter-service makes both at the first start.
  proxy_user ask "the admin page's token"
  {
    echo "# Written by the wasiter-egress Feature's install.sh; read by wasiter-service and wasiter-admin-url at start."
    printf 'ADMIN_PORT=%q\nADMIN_TOKEN=%q\nASK_ROUTES=%q\nPROXY_USER=wasiter\nSANDBOX_USERS=%q\n' \
      "$admin_port" /var/lib/wasiter/admin-token "$etc/egress.routes" "$users"
  } >"$etc/ask.conf"
  shell_profile
  echo "wasiter-egress feature: ask: names not allowed are held while a person answers on http://127.0.0.1:$admin_port/ in the container (forward the port; the address with its token: docker exec -u root CONTAINER wasiter-admin-url); answers forever go into $etc/egress.routes" >&2
fi
if [[ -n $open ]]; then
  # Keys the sandbox never holds (wasiter-keys does the rest at each start):
  # wasiter runs as a user of its own, which alone may read the CA key and
  # the secrets; the sandbox's shells read the roots and the placeholders.
  proxy_user open "the CA key and the secrets"
  if [[ -n $secrets && -f $secrets ]]; then
    # A file in the image: the proxy's user's alone from now on (one that
    # cannot be changed, a mount, is copied for it at each start instead).
    { chown wasiter:"$(id -gn wasiter)" "$secrets" && chmod 0600 "$secrets"; } 2>/dev/null \
      || echo "wasiter-egress feature: option secrets: $secrets cannot be made wasiter's here: it is copied for wasiter at each start" >&2
  fi
  {
    echo "# Written by the wasiter-egress Feature's install.sh; read by wasiter-keys at each start."
    printf 'SECRETS=%q\nCA_DIR=%q\nPROXY_USER=wasiter\nSANDBOX_USERS=%q\n' "$secrets" "${ca_dir:-/var/lib/wasiter/ca}" "$users"
  } >"$etc/keys.conf"
  install -d -m 0755 /usr/local/share/wasiter
  touch /usr/local/share/wasiter/preparing   # until the first start has written sandbox.env
  shell_profile
  echo "wasiter-egress feature: keys: TLS opened for: $open; CA in ${ca_dir:-/var/lib/wasiter/ca} (made at first start)${secrets:+, secrets from $secrets}; wasiter runs as the user wasiter" >&2
fi
# Installed second: warn now (else the wasiter Feature's install.sh does).
if [[ -n $open || $ask == true ]] && [[ -x /usr/local/bin/wasiter-keys ]]; then /usr/local/bin/wasiter-keys sudo || true; fi
echo "wasiter-egress feature: the container's way out is http://$at, to: ${allow:-(none yet)}${asking:+ (others: ask a person)}${deny:+, not to: $deny}${ports:+, ports: $ports}${opaque:+, opaque: $opaque}${to_net:+, addresses: $to_net}${parent:+, through the parent ${parent#*@}}${direct:+ (direct: $direct)}" >&2
