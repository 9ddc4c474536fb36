#!/usr/bin/env bash
# Replaces the vendored Swagger UI (served at GET /docs) with a release from the npm registry.
#
#   crates/smsdesk-web/assets/vendor/update-swagger-ui.sh          # the latest release
#   crates/smsdesk-web/assets/vendor/update-swagger-ui.sh 5.35.0   # a given one
#
# Needs npm and node. `npm pack` checks the tarball against the registry's integrity hash; the
# hash, the version and the licence are written to swagger-ui/VERSION, which the web crate's
# tests read. Rebuild and run the browser suite afterwards (`cargo test -p smsdesk-web --test
# browser`): it opens /docs under the page's Content-Security-Policy and finds every path.
set -euo pipefail

version="${1:-latest}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/swagger-ui"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
tarball="$(npm pack --silent "swagger-ui-dist@$version")"
tar xzf "$tarball"
resolved="$(node -p "require('./package/package.json').version")"
licence="$(node -p "require('./package/package.json').license")"
integrity="$(npm view "swagger-ui-dist@$resolved" dist.integrity)"

rm -rf "$dest"
mkdir -p "$dest"
# Only what the page loads, and the licence texts that must travel with it.
for file in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "package/$file" "$dest/$file"
done
{
  echo "package: swagger-ui-dist"
  echo "version: $resolved"
  echo "licence: $licence"
  echo "integrity: $integrity"
  echo "source: https://www.npmjs.com/package/swagger-ui-dist"
} >"$dest/VERSION"
echo "vendored swagger-ui-dist $resolved ($licence) into $dest"
