#!/usr/bin/env bash
# Installs the Debian packages that headless (EGL) rendering needs, only when one is missing.
set -euo pipefail
pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libgbm1)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing headless rendering packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
