#!/bin/sh
# Makes sure a single-node Garage (S3-compatible object storage) runs on loopback for the S3
# tests, and prints shell `export` lines for it, so that `eval "$(sh .ci/s3-setup.sh)"`
# prepares a shell:
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION  the test key and region
#   OPSI_BACKUP_TEST_S3  s3:http://127.0.0.1:3900/<bucket>/<a prefix nobody used before>
# Installs Garage with cargo when it is missing (~9 min on 2 cores, once per machine), starts
# it when it is not running, and creates its layout, bucket and key once. Idempotent. Its
# state (configuration, data, key, log) lives in $GARAGE_HOME (default
# /var/tmp/opsi-backup-garage); everything but the export lines goes to stderr.
set -eu

GARAGE_HOME="${GARAGE_HOME:-/var/tmp/opsi-backup-garage}"
GARAGE_ROOT="${GARAGE_ROOT:-/opt/garage}"
BUCKET="${OPSI_BACKUP_TEST_BUCKET:-opsi-backup-test}"
S3_PORT="${GARAGE_S3_PORT:-3900}"
RPC_PORT="${GARAGE_RPC_PORT:-3901}"
REGION=garage

say() { echo "s3-setup: $*" >&2; }

find_garage() {
    for g in "$(command -v garage 2>/dev/null || true)" "$GARAGE_ROOT/bin/garage" "$HOME/.cargo/bin/garage"; do
        if [ -n "$g" ] && [ -x "$g" ]; then
            echo "$g"
            return 0
        fi
    done
    return 1
}

if ! GARAGE="$(find_garage)"; then
    say "installing Garage into $GARAGE_ROOT with cargo (about 9 minutes, once)"
    cargo install garage --locked --root "$GARAGE_ROOT" >&2
    GARAGE="$GARAGE_ROOT/bin/garage"
fi

mkdir -p "$GARAGE_HOME"
chmod 700 "$GARAGE_HOME"
CONF="$GARAGE_HOME/garage.toml"
if [ ! -f "$CONF" ]; then
    secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    cat >"$CONF" <<EOF
metadata_dir = "$GARAGE_HOME/meta"
data_dir = "$GARAGE_HOME/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"
EOF
    chmod 600 "$CONF"
fi

g() { "$GARAGE" -c "$CONF" "$@"; }

if ! g status >/dev/null 2>&1; then
    say "starting Garage (log: $GARAGE_HOME/garage.log)"
    # Its own session: it outlives this script and the shell that ran it.
    setsid "$GARAGE" -c "$CONF" server >>"$GARAGE_HOME/garage.log" 2>&1 </dev/null &
    i=0
    until g status >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -ge 60 ]; then
            say "Garage did not come up within 60 s; see $GARAGE_HOME/garage.log"
            exit 1
        fi
        sleep 1
    done
fi

# A single node: give it a role once (a fresh node says NO ROLE ASSIGNED).
if g status 2>/dev/null | grep -q "NO ROLE ASSIGNED"; then
    node="$(g node id -q 2>/dev/null | cut -c1-16)"
    say "assigning the layout to node $node"
    g layout assign -z dc1 -c 10G "$node" >&2
    version="$(g layout show 2>/dev/null | sed -n 's/.*--version \([0-9]*\).*/\1/p' | head -n1)"
    g layout apply --version "${version:-1}" >&2
fi

g bucket info "$BUCKET" >/dev/null 2>&1 || g bucket create "$BUCKET" >&2

KEYS="$GARAGE_HOME/key.env"
if [ ! -f "$KEYS" ]; then
    out="$(g key create opsi-backup-test-key)"
    id="$(echo "$out" | sed -n 's/^ *Key ID: *\([^ ]*\).*/\1/p' | head -n1)"
    secret="$(echo "$out" | sed -n 's/^ *Secret key: *\([^ ]*\).*/\1/p' | head -n1)"
    if [ -z "$id" ] || [ -z "$secret" ]; then
        say "could not read the new key from garage's answer:"
        echo "$out" >&2
        exit 1
    fi
    g bucket allow --read --write --owner "$BUCKET" --key "$id" >&2
    umask 077
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$id" "$secret" >"$KEYS"
fi
. "$KEYS"

# A prefix nobody used before: tests of one run never see another run's objects.
prefix="run-$(date +%Y%m%d-%H%M%S)-$$-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
echo "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
echo "export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
echo "export AWS_DEFAULT_REGION=$REGION"
echo "export OPSI_BACKUP_TEST_S3=s3:http://127.0.0.1:$S3_PORT/$BUCKET/$prefix"
