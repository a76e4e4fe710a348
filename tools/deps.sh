#!/bin/sh
# Installs the Debian packages stagehand needs to build and test (Java and
# Maven too, for the local Apache Kafka), and only those that are missing,
# plus any named as arguments (`make bench` adds wrk and nginx-light);
# clang-format is for tools/format-check. Runs
# `apt-get update` only when something must be installed.
set -eu

packages="build-essential pkg-config librdkafka-dev libmicrohttpd-dev libjansson-dev
libcurl4-openssl-dev libssl-dev libcmocka-dev python3 python3-jwt python3-twilio clang libclang-rt-14-dev clang-format $*"

# Java 17 or newer and Maven run the local Apache Kafka (tools/kafka/kafka.sh):
# Debian's packages unless a java and an mvn are on the PATH already.
java_major() {
    java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
    packages="$packages default-jre-headless"
fi
if ! command -v mvn >/dev/null 2>&1; then
    packages="$packages maven"
fi

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
