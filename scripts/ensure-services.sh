#!/usr/bin/env bash
# Start PostgreSQL and Redis for the test suite when they are not already running;
# install them from Debian's packages on a bare machine.
set -euo pipefail

have_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! have_port 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing postgresql"; apt_install postgresql
  fi
  ver=$(ls /etc/postgresql | head -n1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  conf="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q "127.0.0.1/32 *trust" "$conf" 2>/dev/null; then
    # The tests connect as postgres over TCP without a password, as on the CI machine kind.
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
  fi
  for _ in $(seq 1 30); do have_port 5432 && break; sleep 1; done
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
fi
have_port 5432 && echo "postgresql: up" || { echo "postgresql: could not start"; exit 1; }

if ! have_port 6379; then
  command -v redis-server >/dev/null || { echo "installing redis"; apt_install redis-server; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do have_port 6379 && break; sleep 0.5; done
fi
have_port 6379 && echo "redis: up" || { echo "redis: could not start"; exit 1; }
