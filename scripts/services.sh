#!/usr/bin/env bash
# Ensures the services the tests and the main job use, installing and starting them when absent:
# a MariaDB server on 127.0.0.1:3306 with a test account
#   user osiris_test, password osiris_test, all privileges on databases named osiris%
#   user osiris_secret_probe (a recognisable password), SELECT on them, for the secrets tests
# (override with OSIRIS_TEST_MYSQL_HOST/PORT/USER/PASSWORD to use another server), and then
# the TLS instances of tests/mysql_tls.rs (scripts/mysql_tls_services.sh: 3307 with TLS, 3308
# with require_secure_transport=ON, certificates generated with openssl); and the gzip, bzip2,
# xz and zip commands that make the compressed CSV fixtures.
# Usage: bash scripts/services.sh          (needs root to install or start MariaDB)
set -euo pipefail

host="${OSIRIS_TEST_MYSQL_HOST:-127.0.0.1}"
port="${OSIRIS_TEST_MYSQL_PORT:-3306}"
user="${OSIRIS_TEST_MYSQL_USER:-osiris_test}"
password="${OSIRIS_TEST_MYSQL_PASSWORD:-osiris_test}"

account_works() {
  mariadb -h "$host" -P "$port" -u "$user" -p"$password" -e 'SELECT 1' >/dev/null 2>&1 &&
    mariadb -h "$host" -P "$port" -u osiris_secret_probe -p'Probe-S3cret-Wq7Zk2-recognisable' -e 'SELECT 1' >/dev/null 2>&1
}
server_answers() { mariadb-admin -h "$host" -P "$port" ping >/dev/null 2>&1 || mariadb -u root -e 'SELECT 1' >/dev/null 2>&1; }

# The compression commands the CSV extractor's tests make their fixtures with, and openssl for
# the TLS instances' certificates.
missing_tools=()
for tool in gzip bzip2 xz zip openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done
if [ "${#missing_tools[@]}" -gt 0 ]; then
  echo "installing ${missing_tools[*]} (Debian packages)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gzip bzip2 xz-utils zip openssl >/dev/null
fi

tls_instances() { bash "$(dirname "$0")/mysql_tls_services.sh"; }

if command -v mariadb >/dev/null 2>&1 && account_works; then
  tls_instances
  exit 0
fi
if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
  echo "error: cannot log in to MariaDB at $host:$port as $user; check OSIRIS_TEST_MYSQL_*" >&2
  exit 1
fi

if ! command -v mariadbd >/dev/null 2>&1; then
  echo "installing MariaDB (Debian packages)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi

if ! server_answers; then
  echo "starting MariaDB…" >&2
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do server_answers && break; sleep 0.5; done
  server_answers || { echo "error: MariaDB did not start; see /var/log/mysql/ or journalctl" >&2; exit 1; }
fi

# As the local root (unix socket, or TCP with an empty root password), create the test account.
admin=(mariadb -u root)
"${admin[@]}" -e 'SELECT 1' >/dev/null 2>&1 || admin=(mariadb -u root -h 127.0.0.1 -P "$port")
"${admin[@]}" <<SQL
CREATE USER IF NOT EXISTS '$user'@'localhost' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO '$user'@'localhost';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO '$user'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO '$user'@'%';
-- A read-only account with a recognisable password: the secrets tests search every byte a run
-- produced for it.
CREATE USER IF NOT EXISTS 'osiris_secret_probe'@'%' IDENTIFIED BY 'Probe-S3cret-Wq7Zk2-recognisable';
CREATE USER IF NOT EXISTS 'osiris_secret_probe'@'localhost' IDENTIFIED BY 'Probe-S3cret-Wq7Zk2-recognisable';
CREATE USER IF NOT EXISTS 'osiris_secret_probe'@'127.0.0.1' IDENTIFIED BY 'Probe-S3cret-Wq7Zk2-recognisable';
GRANT SELECT ON \`osiris%\`.* TO 'osiris_secret_probe'@'%';
GRANT SELECT ON \`osiris%\`.* TO 'osiris_secret_probe'@'localhost';
GRANT SELECT ON \`osiris%\`.* TO 'osiris_secret_probe'@'127.0.0.1';
SQL
account_works || { echo "error: the MariaDB test account does not work" >&2; exit 1; }
echo "MariaDB ready on $host:$port (user $user)" >&2
tls_instances
