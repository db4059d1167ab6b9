#!/usr/bin/env bash
# Start the services the tests need when they are not running: Mosquitto, PostgreSQL, pcscd.
set -euo pipefail
wait_port() { # host port what
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$3 did not start listening on $1:$2" >&2
  return 1
}
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "starting mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port 127.0.0.1 1883 mosquitto
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 127.0.0.1 5432 postgresql
fi
if ! pgrep -x pcscd >/dev/null; then
  echo "starting pcscd"
  pcscd
fi
