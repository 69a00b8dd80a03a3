#!/usr/bin/env bash
# Debian packages the tests drive for real: Prometheus (promtool, a scraping server), amtool
# (Alertmanager's config and routing checks) and headless Chromium, with a CJK font so that its
# screenshots show Chinese labels, not boxes. Installs what is missing when it can (root with
# apt-get); otherwise says what to install and exits non-zero, so `make test` stops with that
# line instead of failing later.
set -euo pipefail
declare -A PACKAGE_OF=([prometheus]=prometheus [promtool]=prometheus [amtool]=prometheus-alertmanager [chromium]=chromium)
missing=()
for command in "${!PACKAGE_OF[@]}"; do
  command -v "$command" >/dev/null || missing+=("${PACKAGE_OF[$command]}")
done
[ -n "$(fc-list :lang=zh 2>/dev/null)" ] || missing+=(fonts-wqy-microhei)
[ ${#missing[@]} -eq 0 ] && exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages for the tests: $packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
else
  echo "the tests need: $packages (Debian: sudo apt-get install $packages; or put them on PATH)" >&2
  exit 1
fi
