#!/usr/bin/env bash
# Installs the Debian packages the sandbox needs (Prometheus and promtool), once.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -eq 0 ]; then
  echo "[deps] prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'): installed" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "[deps] installing Debian packages: prometheus (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package's service is not wanted: the sandbox starts its own Prometheus.
pkill -x prometheus 2>/dev/null || true
echo "[deps] prometheus installed: $(prometheus --version 2>&1 | head -1)" >&2
