#!/bin/sh
# Creates the secret files compose.yaml mounts (fresh random keys and passwords), owner-only.
# Existing files are kept: re-running never rotates a key. Never commit the result.
#   sh deploy/make-secrets.sh [DIR]      (default: deploy/secrets)
set -eu
dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
b64() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
word() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }
new() { [ -e "$dir/$1" ] && return 1; return 0; }

new codec_keys && printf '# key-id:base64(32 bytes); the first encrypts, all decrypt\nk%s:%s\n' "$(date +%Y%m%d)" "$(b64 32)" >"$dir/codec_keys"
new search_hmac_key && printf '%s\n' "$(b64 32)" >"$dir/search_hmac_key"
new api_keys && printf '# name:role[+role]:secret\nadmin:admin:%s\n' "$(word 40)" >"$dir/api_keys"
new temporal_db_password && word 32 >"$dir/temporal_db_password"
if new radflow_db_password; then
    word 32 >"$dir/radflow_db_password"
    printf 'RADFLOW_READ_MODEL_URL=postgresql://radflow:%s@radflow-db:5432/radflow\n' "$(cat "$dir/radflow_db_password")" >"$dir/radflow-secrets.env"
fi
# The containers run as uid 10001 and radflow reads key files only when their owner alone can.
if [ "$(id -u)" -eq 0 ]; then
    chown 10001:10001 "$dir/codec_keys" "$dir/search_hmac_key" "$dir/api_keys"
else
    echo "as root: chown 10001:10001 $dir/codec_keys $dir/search_hmac_key $dir/api_keys" >&2
fi
echo "secrets in $dir"
