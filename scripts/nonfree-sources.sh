#!/usr/bin/env bash
# Prints a deb822 sources entry that adds Debian's contrib and non-free
# components (where nvcc lives) from the mirrors this machine already uses:
# every entry of its apt configuration whose suite belongs to this release
# (bookworm, bookworm-updates, bookworm-security, ...), with the same URI
# and keyring. A machine behind a mirror thus keeps using its mirror; no
# fixed address is written. scripts/setup.sh calls it.
#
# Usage: scripts/nonfree-sources.sh [APT_DIR]   (default /etc/apt)
set -euo pipefail
apt_dir=${1:-/etc/apt}
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ -z "$codename" ]; then
  echo "nonfree-sources: /etc/os-release names no release (VERSION_CODENAME)" >&2
  exit 1
fi
{
  # one-line entries: deb [options] URI SUITE COMPONENT...
  cat "$apt_dir"/sources.list "$apt_dir"/sources.list.d/*.list 2>/dev/null |
    awk -v c="$codename" '$1 == "deb" {
      i = 2; key = ""
      if ($2 ~ /^\[/) { while (i <= NF) { if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\].*/, "", key) }
        if ($i ~ /\]$/) break; i++ } i++ }
      if ($(i+1) ~ "^" c "(-|$)") print $i "\t" $(i+1) "\t" key }' || true
  # deb822 entries: Types, URIs, Suites and Signed-By of each stanza
  for f in "$apt_dir"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v c="$codename" '
      function flush() { if (types ~ /(^| )deb( |$)/) { n = split(uris, u, " "); m = split(suites, s, " ")
          for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) if (s[b] ~ "^" c "(-|$)") print u[a] "\t" s[b] "\t" key }
        types = uris = suites = key = "" }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:" { $1 = ""; types = $0 }
      tolower($1) == "uris:" { $1 = ""; uris = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      tolower($1) == "signed-by:" { key = $2 }
      END { flush() }' "$f"
  done
} | sort -u | awk -F '\t' '{ print "Types: deb\nURIs: " $1 "\nSuites: " $2 "\nComponents: contrib non-free"
  if ($3 != "") print "Signed-By: " $3
  print "" }'
