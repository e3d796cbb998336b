#!/bin/sh
# Installs the PostgreSQL server programs when they are missing, for the tests: they start their own
# throwaway server (tests/pg_server.py), never one that runs on the machine. Debian/Ubuntu (apt);
# elsewhere, install PostgreSQL by hand. Nothing to do, and quick, when initdb is already there.
set -eu

has_initdb() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        return 0
    fi
    # Debian keeps the server programs out of PATH, one folder per major version.
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$initdb" ] && return 0
    done
    return 1
}

has_initdb && exit 0

if [ "$(id -u)" -eq 0 ]; then as_root=""; else as_root="sudo"; fi
echo "PostgreSQL is missing; installing the Debian package postgresql (for the tests)" >&2
# A fresh machine has no package lists yet.
$as_root apt-get update -qq
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
has_initdb || { echo "postgresql installed, but initdb is still not found" >&2; exit 1; }
