#!/usr/bin/env bash
# The project's two commands:
#   ./dev.sh run    install what is missing, then serve the app (cargo leptos watch)
#   ./dev.sh test   install what is missing, then run every check and test
# Each install step is skipped when the right version is already there.
set -euo pipefail

root=$(cd "$(dirname "$0")" && pwd)
cd "$root"

CARGO_LEPTOS_VERSION=0.3.10
# cargo install puts tools in $CARGO_HOME/bin, which is ~/.cargo/bin unless
# CARGO_HOME moves it.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$root/end2end/node_modules/.bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}

# The wasm-bindgen crate version the lock file pins; the CLI must match it.
locked_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# Where Debian's chromium package puts the browser. Overridable only so the
# install steps can be tested without touching /usr/bin.
DEBIAN_CHROMIUM=${DEBIAN_CHROMIUM:-/usr/bin/chromium}

setup() {
  check_disk
  need rustup "install Rust with rustup (https://rustup.rs)"
  need cargo "install Rust with rustup (https://rustup.rs)"
  need node "install Node.js 20 or newer (apt-get install nodejs npm)"
  need npm "install npm (apt-get install npm)"
  install_wasm_target
  install_cargo_leptos
  install_wasm_bindgen
  install_debian_packages
  install_npm_packages
}

install_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown && return 0
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown \
    || die "the wasm32-unknown-unknown target is missing: run 'rustup target add wasm32-unknown-unknown'"
}

install_cargo_leptos() {
  [ "$(cargo leptos --version 2>/dev/null)" = "cargo-leptos $CARGO_LEPTOS_VERSION" ] && return 0
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (one time, about 20 minutes on 2 cores)"
  cargo install "cargo-leptos@$CARGO_LEPTOS_VERSION" --locked --features no_downloads \
    || die "cargo-leptos $CARGO_LEPTOS_VERSION is missing: 'cargo install cargo-leptos@$CARGO_LEPTOS_VERSION --locked --features no_downloads' failed (it needs crates.io and a C compiler)"
}

install_wasm_bindgen() {
  local wbg
  wbg=$(locked_version wasm-bindgen)
  [ -n "$wbg" ] || die "Cargo.lock names no wasm-bindgen version; run cargo generate-lockfile"
  [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $wbg" ] && return 0
  say "installing wasm-bindgen-cli $wbg (one time, a few minutes)"
  # --locked fails for this crate on these machines (its lock pins a
  # webpki-roots the registry lacks), so let cargo resolve its deps.
  cargo install wasm-bindgen-cli --version "$wbg" --force \
    || die "wasm-bindgen $wbg is missing: 'cargo install wasm-bindgen-cli --version $wbg' failed (it needs crates.io)"
}

# Chromium for Playwright and shellcheck for the script checks, from the
# distribution, in one apt-get run when either is missing. CHROMIUM_PATH
# names another browser; when it names nothing, Debian's is used instead.
install_debian_packages() {
  if [ -n "${CHROMIUM_PATH:-}" ] && [ ! -x "$CHROMIUM_PATH" ]; then
    say "warning: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable; using Debian's chromium ($DEBIAN_CHROMIUM)"
    unset CHROMIUM_PATH
  fi
  local packages=()
  [ -n "${CHROMIUM_PATH:-}" ] || [ -x "$DEBIAN_CHROMIUM" ] || packages+=(chromium)
  command -v shellcheck >/dev/null 2>&1 || packages+=(shellcheck)
  if [ "${#packages[@]}" != 0 ]; then
    say "installing Debian's ${packages[*]}"
    # As root there is no sudo to go through (and often none installed);
    # `env` carries DEBIAN_FRONTEND through sudo, which would drop it.
    local as_root=()
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 \
        || die "${packages[*]} missing, and installing them needs root: run 'apt-get install ${packages[*]}' as root"
      as_root=(sudo)
    fi
    { "${as_root[@]}" apt-get update -qq \
      && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } \
      || die "${packages[*]} missing: 'apt-get install ${packages[*]}' failed (it needs Debian's package mirror)"
  fi
  [ -n "${CHROMIUM_PATH:-}" ] || [ -x "$DEBIAN_CHROMIUM" ] \
    || die "chromium is missing at $DEBIAN_CHROMIUM after installing it: install it with 'apt-get install chromium' (or set CHROMIUM_PATH)"
  export CHROMIUM_PATH=${CHROMIUM_PATH:-$DEBIAN_CHROMIUM}
}

# Playwright and binaryen's wasm-opt, from the committed lock file; the
# stamp records which lock file node_modules was installed from.
install_npm_packages() {
  local stamp=end2end/node_modules/.installed-from-lock
  if [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum < end2end/package-lock.json)" ]; then
    say "installing the end2end npm packages (npm ci)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) \
      || die "Playwright and wasm-opt are missing: 'npm ci' in end2end/ failed (it needs the npm registry)"
    sha256sum < end2end/package-lock.json > "$stamp"
  fi
  need wasm-opt "run 'npm ci' in end2end/ (package binaryen)"
}

# A build that runs out of disk fails minutes in, as "No space left on device"
# or a linker killed by SIGBUS. Say so before starting instead. FIRST_BUILD_GB
# is what a first `./dev.sh test` writes into an empty target/ (BENCHMARKS.md,
# "Build footprint"); later builds add far less, so then it is only a warning.
FIRST_BUILD_GB=8
check_disk() {
  local dir=$root/target free_gb
  mkdir -p "$dir"
  # No figure (df failed) means no check, not an exit under set -e.
  free_gb=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { printf "%d", $4 / 1048576 }') || free_gb=""
  [ -n "$free_gb" ] && [ "$free_gb" -lt "$FIRST_BUILD_GB" ] || return 0
  if [ -d "$dir/release" ] || [ -d "$dir/debug" ]; then
    say "warning: $free_gb GB free for $dir; builds may run out of disk (a first build needs about $FIRST_BUILD_GB GB)"
  else
    die "$free_gb GB free for $dir, and a first build writes about $FIRST_BUILD_GB GB there: free some disk, then run this again"
  fi
}

run() {
  setup
  say "serving the app on http://localhost:3000 (dev authorization server on http://localhost:3100)"
  exec cargo leptos watch
}

# Runs every check and test suite, keeps going after a failure, and ends with
# one line: the totals over every suite.
test_all() {
  setup
  local log passed=0 failed=0 status=0
  log=$(mktemp -d)

  check() { # name, command...: a check that is not a test suite counts once
    local name=$1; shift
    say "$name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; say "FAILED: $name"; fi
  }

  check "dev.sh install steps" bash scripts/test-setup.sh
  local scripts
  mapfile -t scripts < <(git ls-files '*.sh' .ci/run dev.sh)
  check "shellcheck" shellcheck "${scripts[@]}"
  check "cargo fmt --check" cargo fmt --all -- --check
  check "clippy (ssr)" cargo clippy -p app -p server -p loadtest --all-targets -- -D warnings
  check "clippy (hydrate)" cargo clippy -p app -p frontend --features app/hydrate --target wasm32-unknown-unknown -- -D warnings

  say "cargo test --workspace"
  local rc=0
  cargo test --workspace --exclude frontend 2>&1 | tee "$log/cargo-test.txt" || rc=$?
  local counts
  counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log/cargo-test.txt")
  passed=$((passed + ${counts% *})); failed=$((failed + ${counts#* }))
  if [ "$rc" != 0 ]; then
    status=1
    [ "${counts#* }" != 0 ] || failed=$((failed + 1)) # failed before any test ran
  fi

  say "release build (cargo leptos build --release --precompress)"
  if cargo leptos build --release --precompress; then
    say "Playwright (Debian chromium)"
    rc=0
    (cd end2end && PW_JSON_OUTPUT="$log/playwright.json" npx playwright test) || rc=$?
    if [ -f "$log/playwright.json" ]; then
      counts=$(node -e 'const s=require(process.argv[1]).stats; console.log((s.expected + s.flaky), s.unexpected)' "$log/playwright.json")
      passed=$((passed + ${counts% *})); failed=$((failed + ${counts#* }))
    fi
    if [ "$rc" != 0 ]; then
      status=1
      [ -f "$log/playwright.json" ] && [ "${counts#* }" != 0 ] || failed=$((failed + 1))
    fi
  else
    say "FAILED: release build; Playwright not run"
    failed=$((failed + 1)); status=1
  fi

  rm -rf "$log"
  echo "$passed passed, $failed failed"
  return "$status"
}

case "${1:-}" in
  run) run ;;
  test) test_all ;;
  setup) setup ;;
  doctor) check_disk; need cargo "install Rust with rustup (https://rustup.rs)"; exec cargo run -q -p server --bin server -- doctor "${@:2}" ;;
  *) echo "usage: ./dev.sh run | test | setup | doctor [--token <access token> | --token -]" >&2; exit 2 ;;
esac
