#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, from Debian's archive:
# python3-slixmpp and python3-aioxmpp (real XMPP client libraries used by the interop tests), python3-omemo with
# python3-oldmemo and python3-xmlschema (OMEMO 0.3 for the slixmpp conversations in test/pep/omemo*.test.ts), openssl,
# chromium (the admin console's and Converse.js's browser tests drive it with playwright-core), coturn (a real TURN server
# for the XEP-0215 credentials test, with its turnutils_uclient), testssl.sh (the TLS policy scan), biboumi and ngircd
# (the XEP-0114 component test bridges a real IRC server; the test starts both itself, the packages' services are not
# used), python3-aiohttp (slixmpp's and aioxmpp's HTTP upload code), curl and nginx-light (the XEP-0363 upload tests:
# a real HTTP client, and the documented reverse proxy in front).
# Idempotent: runs apt-get only when something is missing. Uses sudo when not root.
set -euo pipefail
packages=(python3-slixmpp python3-aioxmpp openssl chromium testssl.sh coturn biboumi ngircd python3-aiohttp curl nginx-light python3-omemo python3-oldmemo python3-xmlschema)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies present: ${packages[*]}"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
