#!/usr/bin/env bash
# Rebuild templates/offline_plots.html: DVC's plot page with vega, vega-lite and vega-embed
# inlined (the versions dvc-render loads from a CDN), so `dvc plots show/diff` work offline.
# Needs npm. The libraries are BSD-3-Clause (University of Washington Interactive Data Lab).
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)
(cd "$work" && npm pack --silent "${packages[@]}" >/dev/null && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
{
  echo '<!DOCTYPE html>'
  echo '<html>'
  echo '<head>'
  echo '    {refresh_tag}'
  echo '    <meta charset="utf-8">'
  echo '    <title>DVC Plot (offline)</title>'
  echo "    <!-- ${packages[*]}: BSD-3-Clause, Copyright (c) 2015-2021 University of Washington Interactive Data Lab -->"
  for lib in vega-5.20.2/package/build/vega.min.js vega-lite-5.2.0/package/build/vega-lite.min.js vega-embed-6.18.2/package/build/vega-embed.min.js; do
    printf '    <script>\n'
    cat "$work/$lib"
    printf '\n    </script>\n'
  done
  echo '    <style> table { border-spacing: 15px; } </style>'
  echo '</head>'
  echo '<body>'
  echo '    {plot_divs}'
  echo '</body>'
  echo '</html>'
} > offline_plots.html
echo "wrote $(pwd)/offline_plots.html ($(wc -c < offline_plots.html) bytes)"
