#!/bin/sh
# Installs headless Chromium and its chromedriver when they are missing, for the web gallery's browser
# tests (tests/web/test_browser.py, driven by Selenium with these two programs, never a downloaded
# browser). Debian/Ubuntu (apt); elsewhere, install them by hand. Quick when both are there.
set -eu

has_both() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

has_both && exit 0

if [ "$(id -u)" -eq 0 ]; then as_root=""; else as_root="sudo"; fi
echo "chromium or chromedriver is missing; installing the Debian packages (for the browser tests)" >&2
# A fresh machine has no package lists yet.
$as_root apt-get update -qq
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
has_both || { echo "chromium installed, but chromium or chromedriver is still not on PATH" >&2; exit 1; }
