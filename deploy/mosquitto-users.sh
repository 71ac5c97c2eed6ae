#!/bin/sh
# Writes Mosquitto's password file from the environment: the master's user, then one user per
# edge agent (MQTT_EDGE_USERS="0x01:password1 0x02:password2"). Run before the broker starts.
set -eu
out=${MQTT_PASSWD_FILE:-/mosquitto/auth/passwd}
: "${MQTT_MASTER_PASSWORD:?set MQTT_MASTER_PASSWORD}"
umask 077
tmp="$out.tmp"
rm -f "$tmp"
touch "$tmp"
mosquitto_passwd -b "$tmp" master "$MQTT_MASTER_PASSWORD"
for pair in ${MQTT_EDGE_USERS:-}; do
  mosquitto_passwd -b "$tmp" "${pair%%:*}" "${pair#*:}"
done
mv "$tmp" "$out"
