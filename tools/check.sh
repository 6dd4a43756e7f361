#!/usr/bin/env bash
# Install everything the tests need and run every check CI runs.
#
#   bash tools/check.sh
#
# Idempotent: creates .venv on first run, reuses it after. Needs python3 >= 3.11 with
# venv (every machine of this project's kind has it). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

step() { printf '\n== %s\n' "$*"; }

step "PostgreSQL (storage tests run on SQLite and PostgreSQL)"
# Machines of this project's kind run PostgreSQL on 127.0.0.1:5432 with trust auth;
# start it if it stopped. Where there is none, the PostgreSQL tests skip with a reason
# (and fail under CI=true, where it must be there).
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
fi
if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is accepting connections on 127.0.0.1:5432"
else
    echo "PostgreSQL is not reachable on 127.0.0.1:5432"
fi

step "libsodium (ristretto255 for pseudonyms; pysodium loads the system library)"
if ! .venv/bin/python -c 'from protocol import oprf; raise SystemExit(0 if oprf.available() else 1)'; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libsodium23 >/dev/null
        echo "installed libsodium23"
    else
        echo "libsodium >= 1.0.18 missing and not root: apt-get install libsodium23 as root"
    fi
else
    echo "libsodium with ristretto255 is available"
fi

step "ruff (lint and format)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "mypy (strict for protocol/)"
.venv/bin/mypy

step "import-linter (admin_ui | tools -> node -> protocol; protocol is pure)"
.venv/bin/lint-imports

step "test vectors are current"
.venv/bin/python -m tools.gen_vectors --check

step "Chromium and Arabic fonts (browser tests in tests/ui)"
# Debian's chromium drives the Playwright tests; fonts-noto-core holds Noto Naskh/Sans
# Arabic, so Arabic pages render (and screenshot) with real glyphs. Without them the
# browser tests skip with a reason (and fail under CI=true).
if ! command -v chromium >/dev/null 2>&1 || ! dpkg-query -W -f='${Status}' fonts-noto-core 2>/dev/null | grep -q 'ok installed'; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium fonts-noto-core >/dev/null
        echo "installed chromium and fonts-noto-core"
    else
        echo "chromium or fonts-noto-core missing and not root: install them with apt as root"
    fi
else
    echo "chromium and fonts-noto-core are installed"
fi

step "nftables (network-fault tests, where the kernel has no netem)"
# tests/integration/test_netns_faults.py drops packets with nftables and delays them
# with a relay behind an nftables redirect when tc's netem qdisc is missing (this
# project's CI kernel has none). Without nft that test skips with the reason (and
# fails under CI=true).
if ! command -v nft >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            nftables >/dev/null
        echo "installed nftables"
    else
        echo "nft missing and not root: apt-get install nftables as root"
    fi
else
    echo "nftables is installed"
fi

step "pytest (branch coverage of protocol/ >= 95%), two workers"
# pytest-xdist: two workers (CI has two cores; the node, browser and PostgreSQL tests
# spend much of their time waiting), each test handed to whichever is free, except the
# groups tests/conftest.py names (the browser tests, the network-namespace tests), each
# run whole on one worker. The options live here, not in addopts, so that running one
# test file stays one process (and --pdb works); coverage is combined from both workers.
.venv/bin/pytest -n 2 --dist loadgroup --cov --cov-report=term --cov-fail-under=95
