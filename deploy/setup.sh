#!/usr/bin/env bash
# Creates the virtualenv and installs storenode with its test extras.
# As root with apt available, also installs Debian's ISA-L (libisal2), the
# preferred GF(2^8) kernel; otherwise the copy of ISA-L bundled in the pyeclib
# wheel is used, or failing that the numpy kernel.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    if ! dpkg -s libisal2 >/dev/null 2>&1; then
        echo "setup: installing Debian package libisal2 (ISA-L erasure-coding kernel)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq libisal2 >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq libisal2 >/dev/null; } \
            || echo "setup: could not install libisal2; the ISA-L bundled with pyeclib (or numpy) will be used"
    fi
else
    echo "setup: not root or no apt-get: the ISA-L bundled with pyeclib (or the numpy kernel) will be used"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "setup: storenode needs Python >= 3.11 ($python is older)" >&2; exit 1; }
    "$python" -m venv "$venv"
fi
# pip's build warnings are noise for a user; keep them in a log shown on failure.
log="$venv/setup.log"
if ! { "$venv/bin/python" -m pip install -q --upgrade pip \
       && "$venv/bin/python" -m pip install -q -e '.[test]' \
              --config-settings editable_mode=compat; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: installing storenode into $venv failed (log above, kept in $log)" >&2
    exit 1
fi
# "compat": the checkout goes on sys.path through a plain path in a .pth file.
# setuptools' default editable install imports a finder at every start of
# Python instead (pathlib, urllib.parse, ipaddress...): ~6 ms more per command
# measured here, and a node, a test and the demo start many.
# An editable install leaves storenode's own modules uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set every command would compile them again (about
# 0.13 s per command on the reference machine): compile them once here.
"$venv/bin/python" -m compileall -q storenode contracts >/dev/null
echo "setup: ready ($("$venv/bin/python" -c 'from storenode.coding.kernel import backend_name; print("GF(2^8) kernel:", backend_name())'))"
