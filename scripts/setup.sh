#!/usr/bin/env bash
# Installs everything mcwarm needs to build, test, run its demo and its benchmarks on
# Debian 12. Idempotent: packages already present are not reinstalled. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config git clang clang-format libclang-rt-dev
	liburing-dev libisal-dev libcurl4-openssl-dev libnuma-dev libmimalloc-dev libcmocka-dev
	libssl-dev openssl
	memcached libmemcached-tools libmemcached-dev netcat-openbsd fio gnuplot-nox valgrind
	python3 python3-prometheus-client procps util-linux e2fsprogs time man-db
	ansible-core openssh-server openssh-client iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
	SUDO=(sudo)
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#PACKAGES[@]} packages already installed"
else
	if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
		echo "setup: need root to install: ${missing[*]} (run as root or install sudo)" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The S3 API server the objstore tests run against (tests/integration/test_s3.py), from
# npm on Debian's Node.js; pinned, installed only when missing.
S3RVER_VERSION=3.7.1
if ! command -v npm >/dev/null; then # a Node.js from elsewhere brings its own npm
	"${SUDO[@]}" apt-get install -y -qq --no-install-recommends nodejs npm
fi
if ! s3rver --version 2>/dev/null | grep -qx "$S3RVER_VERSION"; then
	echo "setup: installing s3rver@$S3RVER_VERSION (npm)"
	"${SUDO[@]}" npm install -g --no-audit --no-fund "s3rver@$S3RVER_VERSION"
fi
