#!/usr/bin/env bash
# System tools some tests need, from Debian's packages: promtool (package prometheus) for
# the alert-rule tests. Installs what is missing when it can (root and apt-get); otherwise
# says so and carries on (those tests then skip, or fail when CI=true).
set -u
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
((${#missing[@]})) || exit 0
if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
  echo "installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]}; the tests that need them will skip"
else
  echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that need them will skip"
fi
exit 0
