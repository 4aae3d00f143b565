#!/usr/bin/env bash
# install.sh (make install): installs tickcast as a systemd service: the binary as
# PREFIX/bin/tickcast, the unit deploy/tickcast.service, the example settings deploy/tickcast.conf
# as /etc/tickcast/tickcast.conf unless that file exists, and the system user `tickcast`. Running
# it again changes nothing but the binary and the unit. It neither enables nor starts the service.
#   deploy/install.sh                       onto this machine (as root)
#   DESTDIR=/tmp/stage deploy/install.sh    into a staging root (packaging): no user, no chown
# Environment: DESTDIR (staging root, default none), PREFIX (default /usr/local), UNITDIR
# (default /etc/systemd/system), SYSCONFDIR (default /etc), BIN (the built binary, default
# ./tickcast).
set -euo pipefail
cd "$(dirname "$0")/.."
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SYSCONFDIR=${SYSCONFDIR:-/etc}
BIN=${BIN:-tickcast}
USER_NAME=tickcast
STATE_DIR=/var/lib/tickcast

say() { echo "install.sh: $*"; }
[ -x "$BIN" ] || { say "$BIN is not built: run make first" >&2; exit 2; }
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  say "installing onto this machine needs root (or set DESTDIR to stage the files)" >&2
  exit 2
fi

# The system user the unit runs as; its home is the state directory, it cannot log in.
if [ -z "$DESTDIR" ]; then
  if getent passwd "$USER_NAME" >/dev/null; then
    say "user $USER_NAME exists"
  else
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "tickcast daemon" "$USER_NAME"
    say "created system user $USER_NAME"
  fi
fi

install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR$UNITDIR"
install -m 0755 "$BIN" "$DESTDIR$PREFIX/bin/tickcast"
say "installed $DESTDIR$PREFIX/bin/tickcast"

# The unit names the binary and the config by path: follow PREFIX and SYSCONFDIR.
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed -e "s|/usr/local/bin/tickcast|$PREFIX/bin/tickcast|g" \
  -e "s|/etc/tickcast/|$SYSCONFDIR/tickcast/|g" deploy/tickcast.service >"$unit"
install -m 0644 "$unit" "$DESTDIR$UNITDIR/tickcast.service"
say "installed $DESTDIR$UNITDIR/tickcast.service"

# The settings may hold credentials (kafka.sasl.password): readable by root and the service.
conf="$DESTDIR$SYSCONFDIR/tickcast/tickcast.conf"
install -d -m 0755 "$DESTDIR$SYSCONFDIR/tickcast"
if [ -e "$conf" ]; then
  say "kept the existing $conf"
else
  install -m 0640 deploy/tickcast.conf "$conf"
  [ -n "$DESTDIR" ] || chgrp "$USER_NAME" "$conf"
  say "installed $conf (edit brokers and model)"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
say "next: put the model at $STATE_DIR/model.safetensors (the 'model' setting), then" \
  "systemctl enable --now tickcast"
