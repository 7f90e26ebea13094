#!/usr/bin/env bash
# Debian packages the tests compare against. Installed only when missing, so a warm machine pays nothing.
set -euo pipefail
pkgs=()
need() { dpkg -s "$1" >/dev/null 2>&1 || pkgs+=("$1"); }
# ONNX backend node tests (model.onnx + reference TensorProtos) run through the ONNX Runtime binding.
need libonnx-testdata
# (added by the issues that need them: libonnx-testdata, python3-onnx, chromium, ...)
need python3-onnx          # onnx.checker (full check) validates exported ONNX models in EdgeQuant.Export.Tests
need libopenblas0-pthread   # the SGEMM/SGEMV peer in `make bench` (cblas_sgemm via libopenblas.so.0)
need chromium               # headless browser check of report.html (BrowserReportTests in EdgeQuant.Verification.Tests)
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing Debian packages: ${pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
