#!/bin/sh
# Debian packages the full test suite needs, installed when missing (as root) or named in one line.
#   chromium, fonts-liberation: tests render the leaderboard's HTML report in headless Chromium
#   cmake, g++: llama-cpp-python (the tests' OpenAI-compatible server) builds from source
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium fonts-liberation"
command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "make test needs these packages; install them, then rerun: sudo apt-get install -y$missing" >&2
    exit 1
fi
