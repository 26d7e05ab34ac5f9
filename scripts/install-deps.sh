#!/usr/bin/env bash
# Installs what Drover's tests and demo need from Debian's packages:
# containerd, runc, a static busybox (the tests build their container
# image from it) and chromium (the web UI's test drives it headless).
# Does nothing when they are already installed. Needs root when
# something is missing.
set -euo pipefail

missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# The image needs a statically linked busybox; Debian's plain busybox
# package is dynamic.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y "${missing[@]}"; then
  apt-get update
  apt-get install -y "${missing[@]}"
fi
