#!/bin/sh
# Makes sure a local MariaDB is running for the MySQL integration tests and prints the
# OPSI_BACKUP_TEST_MYSQL value for it (exports it too when sourced: `. .ci/mysql-setup.sh`).
# Idempotent: does nothing but check when the server is already up.
# Needs root (or the mysql user) to start the server; root must log in over the socket
# without a password (Debian's default unix_socket / empty root password).

SOCKET="${MYSQL_SOCKET:-/run/mysqld/mysqld.sock}"

mysql_ping() {
    mysqladmin --no-defaults --socket="$SOCKET" --user=root ping >/dev/null 2>&1
}

mysql_setup() {
    if ! mysql_ping; then
        echo "mysql-setup: starting MariaDB" >&2
        # The pid/socket directory lives on tmpfs and is gone after a reboot.
        mkdir -p "$(dirname "$SOCKET")"
        chown mysql:mysql "$(dirname "$SOCKET")" 2>/dev/null || true
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
            || { echo "mysql-setup: could not start /usr/sbin/mariadbd" >&2; return 1; }
        i=0
        while ! mysql_ping; do
            i=$((i + 1))
            if [ "$i" -ge 60 ]; then
                echo "mysql-setup: MariaDB did not come up within 60 s" >&2
                return 1
            fi
            sleep 1
        done
    fi
    OPSI_BACKUP_TEST_MYSQL="socket=$SOCKET;user=root;password="
    export OPSI_BACKUP_TEST_MYSQL
    echo "$OPSI_BACKUP_TEST_MYSQL"
}

mysql_setup
