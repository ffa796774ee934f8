#!/bin/sh
# Installs the Debian packages of the real peers the test suite drives (only those missing).
set -eu
# rtpengine-daemon (not the rtpengine metapackage, which builds a kernel module) and a C
# compiler for bench/rtpload.c are for `make bench-media`; chromium for the portal's end-to-end tests
# (driven by playwright, which never downloads a browser of its own); firefox-esr for the web phone's
# Firefox test (driven over WebDriver BiDi by puppeteer-core from frontend/, no geckodriver and no
# browser download); wrk for `make bench-api`.
PKGS="chromium firefox-esr wrk sip-tester baresip-core linphone-cli kamailio sngrep tshark sox espeak-ng fail2ban rtpengine-daemon gcc libc6-dev"
missing=""
for pkg in $PKGS; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "Installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing
else
  echo "The real-peer tests need these Debian packages:$missing" >&2
  echo "Install them with: sudo apt-get install --no-install-recommends$missing" >&2
  exit 1
fi
