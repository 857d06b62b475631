# shellcheck shell=sh
# wasiter-egress (options open, secrets): the roots and the placeholders for
# this shell, never a value, from what wasiter-keys wrote when the container
# started; while it is still at it ("preparing"), wait (at most 30 s).
# Installed as /etc/profile.d/wasiter-keys.sh.
wasiter_i=0
while [ -e /usr/local/share/wasiter/preparing ] && [ ! -e /usr/local/share/wasiter/sandbox.env ] && [ "$wasiter_i" -lt 150 ]; do
  sleep 0.2; wasiter_i=$((wasiter_i + 1))
done
unset wasiter_i
# shellcheck source=/dev/null
[ -r /usr/local/share/wasiter/sandbox.env ] && . /usr/local/share/wasiter/sandbox.env
case $- in *i*) [ -s /usr/local/share/wasiter/warning ] && cat /usr/local/share/wasiter/warning >&2 ;; esac
true
