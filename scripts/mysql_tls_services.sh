#!/usr/bin/env bash
# The TLS MariaDB instances of tests/mysql_tls.rs, next to the plain one of services.sh (which
# calls this script). Idempotent and quick when everything is up already:
#   - certificates (openssl CLI) in $OSIRIS_TEST_MYSQL_TLS_DIR/certs (default /var/tmp/osiris-mysql-tls):
#     ca.pem (the test CA), server-cert.pem (signed by it, for DNS name `localhost` only: connecting
#     by 127.0.0.1 with VERIFY_IDENTITY must fail), wrong-ca.pem (a CA that signed nothing),
#     client-cert.pem / client-key.pem (a client certificate signed by the test CA);
#   - 127.0.0.1:3307 ($OSIRIS_TEST_MYSQL_TLS_PORT): TLS offered, plaintext allowed;
#   - 127.0.0.1:3308 ($OSIRIS_TEST_MYSQL_STRICT_PORT): require_secure_transport=ON.
# Each has its own data directory and socket, the test account osiris_test/osiris_test on
# databases named osiris%, and osiris_x509 (same password) that must log in with a client
# certificate (REQUIRE X509).
# Usage: bash scripts/mysql_tls_services.sh   (as root: it starts mariadbd as user mysql)
set -euo pipefail

dir="${OSIRIS_TEST_MYSQL_TLS_DIR:-/var/tmp/osiris-mysql-tls}"
tls_port="${OSIRIS_TEST_MYSQL_TLS_PORT:-3307}"
strict_port="${OSIRIS_TEST_MYSQL_STRICT_PORT:-3308}"
user=osiris_test
password=osiris_test
certs="$dir/certs"
mariadbd_bin="$(command -v mariadbd || echo /usr/sbin/mariadbd)"

# A CA certificate (self-signed) named $1 with subject CN $2.
make_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$1-key.pem" -out "$1.pem" 2>/dev/null
}

# A certificate $1 for CN $2 signed by the test CA, with extensions $3.
make_signed() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1-cert.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

make_certs() {
  # client-key.pem is written last: its presence means the set is complete.
  [ -s "$certs/client-cert.pem" ] && return 0
  echo "generating test TLS certificates in $certs…" >&2
  rm -rf "$certs" && mkdir -p "$certs"
  (
    cd "$certs"
    make_ca ca "Osiris test CA"
    make_ca wrong-ca "Osiris wrong CA"
    make_signed server localhost \
      'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
    make_signed client osiris_x509 \
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
    chmod 644 ./*.pem
  )
}

# Whether the instance $1 answers as root over its socket.
answers() { mariadb-admin --no-defaults --protocol=socket -S "$dir/run/$1.sock" -u root ping >/dev/null 2>&1; }

# Starts instance $1 on port $2 (extra mariadbd options after) unless it runs already.
start_instance() {
  local name="$1" port="$2"
  shift 2
  answers "$name" && return 0
  local data="$dir/$name"
  if [ ! -d "$data/mysql" ]; then
    echo "initialising MariaDB data directory $data…" >&2
    mkdir -p "$data"
    chown mysql:mysql "$data"
    mariadb-install-db --no-defaults --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
      --skip-test-db >"$dir/$name.install.log" 2>&1 ||
      { echo "error: mariadb-install-db failed; see $dir/$name.install.log" >&2; exit 1; }
  fi
  echo "starting MariaDB $name on 127.0.0.1:$port…" >&2
  setsid "$mariadbd_bin" --no-defaults --user=mysql --datadir="$data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$dir/run/$name.sock" --pid-file="$dir/run/$name.pid" --log-error="$dir/run/$name.err" \
    --innodb-buffer-pool-size=32M --skip-log-bin --max-connections=200 \
    --ssl-ca="$certs/ca.pem" --ssl-cert="$certs/server-cert.pem" --ssl-key="$certs/server-key.pem" \
    "$@" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 120); do answers "$name" && break; sleep 0.25; done
  answers "$name" || { echo "error: MariaDB $name did not start; see $dir/run/$name.err" >&2; exit 1; }
}

# The test accounts on instance $1.
accounts() {
  mariadb --no-defaults --protocol=socket -S "$dir/run/$1.sock" -u root <<SQL
CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$user'@'localhost' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO '$user'@'%';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO '$user'@'localhost';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO '$user'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'osiris_x509'@'%' IDENTIFIED BY '$password' REQUIRE X509;
CREATE USER IF NOT EXISTS 'osiris_x509'@'localhost' IDENTIFIED BY '$password' REQUIRE X509;
CREATE USER IF NOT EXISTS 'osiris_x509'@'127.0.0.1' IDENTIFIED BY '$password' REQUIRE X509;
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO 'osiris_x509'@'%';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO 'osiris_x509'@'localhost';
GRANT ALL PRIVILEGES ON \`osiris%\`.* TO 'osiris_x509'@'127.0.0.1';
SQL
}

# Sockets, pid files and logs: written by mariadbd as user mysql.
if ! command -v openssl >/dev/null 2>&1; then
  echo "installing openssl (the CLI generates the test certificates)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
mkdir -p "$dir/run"
chown mysql:mysql "$dir/run"
make_certs
start_instance tls "$tls_port"
start_instance strict "$strict_port" --require-secure-transport=ON
accounts tls
accounts strict
echo "MariaDB with TLS ready on 127.0.0.1:$tls_port and (secure transport only) 127.0.0.1:$strict_port" >&2
