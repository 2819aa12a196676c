#!/usr/bin/env bash
# A first `./dev.sh test` as on a bare machine, on the build machine: clones
# HEAD into a fresh temporary directory, gives it a throwaway CARGO_HOME (a
# copy of ~/.cargo without cargo-leptos and wasm-bindgen) and RUSTUP_HOME (a
# copy of the active toolchain without the wasm32-unknown-unknown target) and
# an empty npm cache, points CHROMIUM_PATH at a file that does not exist, and
# runs `./dev.sh test` there under `time`. Then prints the wall time and the
# last line (`N passed, M failed`); the whole output stays in a log file.
#
# Not run by CI: it takes about 30 minutes (cargo-leptos alone is ~20), needs
# crates.io, the npm registry and static.rust-lang.org, about 8 GB for the
# clone's target/ and 3 GB for the copies.
#
#   scripts/bare-machine.sh
#   KEEP=1 scripts/bare-machine.sh         # keep the temporary directory
#   REAL_RUSTUP=1 scripts/bare-machine.sh  # use ~/.rustup as it is (with its
#                                          # wasm32 target): no rust-lang download
#   LOG=/tmp/bare.log scripts/bare-machine.sh
#   TMPDIR=/big/disk scripts/bare-machine.sh
#
# It runs the committed HEAD: uncommitted changes are not in the clone.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && git rev-parse --show-toplevel)
head=$(git -C "$repo" rev-parse HEAD)
src_cargo=${CARGO_HOME:-$HOME/.cargo}
src_rustup=${RUSTUP_HOME:-$HOME/.rustup}
log=${LOG:-$repo/target/bare-machine-$(date +%Y%m%d-%H%M%S).log}
mkdir -p "$(dirname "$log")"
log=$(cd "$(dirname "$log")" && pwd)/$(basename "$log")

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ -d "$src_cargo/bin" ] || die "no $src_cargo/bin to copy: install Rust with rustup first"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  say "warning: uncommitted changes in $repo are not in the clone (it runs HEAD, ${head:0:12})"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bare-machine.XXXXXX")
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    say "kept $work"
  else
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_gb=$(df -Pk "$work" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
[ "$free_gb" -ge 12 ] \
  || die "$free_gb GB free in $work; the copies and a first build need about 12 GB: set TMPDIR to a disk with room"

say "cloning $repo at ${head:0:12} into $work/repo"
git clone --quiet "$repo" "$work/repo"
git -C "$work/repo" checkout --quiet --detach "$head"

say "CARGO_HOME: copying $src_cargo, without cargo-leptos and wasm-bindgen"
cp -a "$src_cargo" "$work/cargo"
export CARGO_HOME=$work/cargo

if [ "${REAL_RUSTUP:-0}" = 1 ]; then
  export RUSTUP_HOME=$src_rustup
  say "RUSTUP_HOME: $RUSTUP_HOME as it is"
else
  toolchain=$(cd "$work/repo" && RUSTUP_HOME=$src_rustup rustup show active-toolchain | awk '{ print $1; exit }')
  [ -d "$src_rustup/toolchains/$toolchain" ] || die "no toolchain $toolchain in $src_rustup/toolchains (try REAL_RUSTUP=1)"
  say "RUSTUP_HOME: copying toolchain $toolchain, without the wasm32-unknown-unknown target"
  mkdir -p "$work/rustup/toolchains/$toolchain" "$work/rustup/update-hashes"
  cp "$src_rustup/settings.toml" "$work/rustup/"
  [ ! -f "$src_rustup/update-hashes/$toolchain" ] || cp "$src_rustup/update-hashes/$toolchain" "$work/rustup/update-hashes/"
  cp -a "$src_rustup/toolchains/$toolchain/." "$work/rustup/toolchains/$toolchain/"
  export RUSTUP_HOME=$work/rustup
fi

# From here on only the copies are used: no real ~/.cargo/bin on PATH (nor
# a node_modules/.bin of the repo, if this runs from inside dev.sh).
path=""
IFS=: read -r -a dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  case $d in
    "$src_cargo/bin" | "$HOME/.cargo/bin" | "$repo/end2end/node_modules/.bin" | "") ;;
    *) path=${path:+$path:}$d ;;
  esac
done
export PATH=$CARGO_HOME/bin:$path

(cd "$work/repo" && cargo uninstall cargo-leptos wasm-bindgen-cli) >/dev/null 2>&1 || true
rm -f "$CARGO_HOME/bin/cargo-leptos" "$CARGO_HOME/bin/wasm-bindgen"
if [ "${REAL_RUSTUP:-0}" != 1 ]; then
  (cd "$work/repo" && rustup target remove wasm32-unknown-unknown) >/dev/null 2>&1 || true
  if (cd "$work/repo" && rustup target list --installed) | grep -x wasm32-unknown-unknown >/dev/null; then
    die "could not remove the wasm32-unknown-unknown target from the copy in $RUSTUP_HOME"
  fi
fi
for tool in cargo-leptos wasm-bindgen; do
  if found=$(command -v "$tool"); then die "not bare: $found is on PATH"; fi
done

# Settings of the caller that would change what the run builds or tests.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER \
  DEBIAN_CHROMIUM APP_URL ISSUER CLIENT_ID AUDIENCE SCOPES RESPONSE_TYPE REDIRECT_URI \
  POST_LOGOUT_REDIRECT_URI PUBLIC_ORIGIN TOKEN_LEEWAY_SECS DEV_IDP_ADDR DEV_IDP_CONFIG \
  DEV_IDP_CONTROL
export CHROMIUM_PATH=$work/no-such-chromium
export npm_config_cache=$work/npm-cache

say "./dev.sh test in $work/repo (about 30 minutes); log: $log"
start=$SECONDS
TIMEFORMAT=$'\n''time: real %0R s, user %0U s, sys %0S s'
set +e
{ time (cd "$work/repo" && ./dev.sh test); } 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
wall=$((SECONDS - start))

totals=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
{
  echo
  echo "bare machine, HEAD ${head:0:12}: ./dev.sh test exited $rc"
  echo "wall time: ${wall} s ($((wall / 60)) min $((wall % 60)) s)"
  echo "${totals:-no totals line: dev.sh stopped before the end (see the log)}"
  echo "log: $log"
} | tee -a "$log"
exit "$rc"
