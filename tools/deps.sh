#!/bin/sh
# Installs the Debian packages stagehand needs to build and test, and only those
# that are missing, plus any named as arguments (`make bench` adds wrk and
# nginx-light). Runs `apt-get update` only when something must be installed.
set -eu

packages="build-essential pkg-config librdkafka-dev libmicrohttpd-dev libjansson-dev
libcurl4-openssl-dev libssl-dev libcmocka-dev python3 python3-jwt python3-twilio clang libclang-rt-14-dev $*"

missing=""
for pkg in $packages; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
