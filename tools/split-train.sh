#!/bin/sh
# split-train, as installed: runs tools/split_train.py from the installed share directory with
# Debian's python3 (the one with python3-torch); PYTHON overrides the interpreter.
here=$(dirname "$(readlink -f "$0")")
exec "${PYTHON:-/usr/bin/python3}" "$here/../share/libsplit/tools/split_train.py" "$@"
