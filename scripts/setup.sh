#!/usr/bin/env bash
# Installs everything mcwarm needs to build, test, run its demo and its benchmarks on
# Debian 12. Idempotent: packages already present are not reinstalled. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config git clang clang-format libclang-rt-dev
	liburing-dev libisal-dev libnuma-dev libmimalloc-dev libcmocka-dev libssl-dev openssl
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

if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#PACKAGES[@]} packages already installed"
	exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=(sudo)
	else
		echo "setup: need root to install: ${missing[*]} (run as root or install sudo)" >&2
		exit 1
	fi
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
