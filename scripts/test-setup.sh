#!/usr/bin/env bash
# Tests dev.sh's install steps (`./dev.sh setup`) without installing anything:
# each case runs the real dev.sh in a temporary copy of the repo (dev.sh,
# Cargo.lock, end2end/package*.json; no node_modules, no target/) with HOME in
# a temporary directory and PATH holding only stub commands, a stand-in for
# /usr/bin that apt-get fills, and symlinks to a few basic utilities. The stubs
# (apt-get, sudo, cargo, rustup, npm, node, id, df and what they install)
# append what they were asked to do to a call log and simulate the installed
# state; each case compares the install commands in that log with the ones it
# expects. Runs in a few seconds, needs no network and no root.
#
#   bash scripts/test-setup.sh      # one line per case; exits 1 if any failed
#
# In the call log, a line starting with "? " is a read-only query (a version
# check, `id -u`, `df`) and "~ " is sudo itself; neither is compared. apt-get
# notes how it ran ({as=root}, {as=sudo} or {as=user}) and the DEBIAN_FRONTEND
# it saw; npm notes its directory and PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash_bin=$(command -v bash)

# The only real commands dev.sh and the stubs get.
utils=$tmp/utils
mkdir -p "$utils"
for u in bash awk grep sha256sum cat mkdir dirname env rm mktemp chmod tee; do
  ln -s "$(command -v "$u")" "$utils/$u"
done

# The wasm-bindgen version Cargo.lock pins, read independently of dev.sh.
wbg=$(grep -A1 -x 'name = "wasm-bindgen"' "$repo/Cargo.lock" | awk -F'"' '/^version = / { print $2 }')
[ -n "$wbg" ] || { echo "Cargo.lock names no wasm-bindgen version" >&2; exit 1; }
leptos=0.3.10
host_target=x86_64-unknown-linux-gnu

# Expected call lines, shared by the cases.
rustup_add="rustup target add wasm32-unknown-unknown"
leptos_install="cargo install cargo-leptos@$leptos --locked --features no_downloads"
wbg_install="cargo install wasm-bindgen-cli --version $wbg --force"
npm_ci="npm ci --no-audit --no-fund {cwd=end2end PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1}"

failures=0
n=0

# --- one case's world ---------------------------------------------------------

# new_case NAME: a fresh copy of the repo, an empty HOME, every stub except
# the installed tools, uid 1000 and sudo present.
new_case() {
  name=$1
  n=$((n + 1))
  c=$tmp/case$n
  problems=""
  mkdir -p "$c/repo/end2end" "$c/home" "$c/stubs" "$c/sysbin"
  cp "$repo/dev.sh" "$repo/Cargo.lock" "$c/repo/"
  cp "$repo/end2end/package.json" "$repo/end2end/package-lock.json" "$c/repo/end2end/"
  : > "$c/calls"
  printf 'uid=1000\napt_fail=0\n' > "$c/conf"
  write_stubs
  extra_env=()
}

# The preamble of every stub: where to log, the case's settings, log().
# A stub runs with the case's PATH, so it uses only the utilities above.
stub_head() {
  cat <<EOF
#!$bash_bin
set -euo pipefail
calls='$c/calls'
repo='$c/repo'
sysbin='$c/sysbin'
make_tool='$c/make-tool'
. '$c/conf'
log() { printf '%s\n' "\$*" >> "\$calls"; }
EOF
}

# stub NAME BODY: writes an executable stub into the case's stub directory.
stub() {
  { stub_head; printf '%s\n' "$2"; } > "$c/stubs/$1"
  chmod +x "$c/stubs/$1"
}

# The stub bodies are single-quoted: they expand when the stubs run.
# shellcheck disable=SC2016
write_stubs() {
  # make-tool FILE NAME OUTPUT: an installed tool that answers any call with
  # OUTPUT (its version line). Used by the installing stubs and the cases.
  { stub_head; cat <<'EOF'
file=$1 name=$2 output=$3
mkdir -p "${file%/*}"
cat > "$file" <<TOOL
#!$BASH
printf '%s\n' "? $name \$*" >> '$calls'
printf '%s\n' '$output'
TOOL
chmod +x "$file"
EOF
  } > "$c/make-tool"
  chmod +x "$c/make-tool"

  # id: -u is the case's uid, or 0 under sudo.
  stub id '
log "? id $*"
if [ -n "${SUDO_USER:-}" ]; then echo 0; else echo "$uid"; fi'

  # df -Pk DIR: plenty of room.
  stub df '
log "? df $*"
echo "Filesystem 1024-blocks Used Available Capacity Mounted on"
echo "stub 4000000000 1000000000 3000000000 25% /"'

  # sudo: records itself, then runs its arguments as root the way sudo's
  # env_reset does: only PATH and HOME survive, plus VAR=value words given.
  stub sudo '
log "~ sudo $*"
vars=(PATH="$PATH" HOME=/root SUDO_USER=stub)
while [ "$#" -gt 0 ] && [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do vars+=("$1"); shift; done
exec env -i "${vars[@]}" "$@"'

  # apt-get: needs root (like the real one), installs into the case's
  # stand-in for /usr/bin, fails when the case says so.
  stub apt-get '
if [ -n "${SUDO_USER:-}" ]; then as=sudo; elif [ "$uid" = 0 ]; then as=root; else as=user; fi
info="as=$as"
[ -z "${DEBIAN_FRONTEND:-}" ] || info="$info DEBIAN_FRONTEND=$DEBIAN_FRONTEND"
log "apt-get $* {$info}"
if [ "$as" = user ]; then
  echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
  exit 100
fi
[ "${1:-}" = install ] || exit 0
if [ "$apt_fail" = 1 ]; then
  echo "E: Failed to fetch http://deb.debian.org/debian/pool/main/c/chromium/chromium.deb  Could not resolve deb.debian.org" >&2
  exit 100
fi
for arg in "$@"; do
  case $arg in
    chromium) "$make_tool" "$sysbin/chromium" chromium "Chromium 140.0 built on Debian" ;;
    shellcheck) "$make_tool" "$sysbin/shellcheck" shellcheck "ShellCheck - shell script analysis tool" ;;
  esac
done'

  # cargo: `install` puts a tool printing its version into $CARGO_HOME/bin;
  # `leptos` runs cargo-leptos from $CARGO_HOME/bin or PATH, as cargo does.
  stub cargo '
bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ${1:-} in
  install)
    log "cargo $*"
    shift
    crate="" version=""
    while [ "$#" -gt 0 ]; do
      case $1 in
        --version) version=$2; shift ;;
        --features) shift ;;
        -*) ;;
        *) crate=$1 ;;
      esac
      shift
    done
    [[ $crate != *@* ]] || { version=${crate#*@}; crate=${crate%@*}; }
    case $crate in
      cargo-leptos) "$make_tool" "$bin/cargo-leptos" cargo-leptos "cargo-leptos $version" ;;
      wasm-bindgen-cli) "$make_tool" "$bin/wasm-bindgen" wasm-bindgen "wasm-bindgen $version" ;;
      *) echo "error: could not find \`$crate\` in registry" >&2; exit 101 ;;
    esac ;;
  leptos)
    log "? cargo $*"
    if [ -x "$bin/cargo-leptos" ]; then exec "$bin/cargo-leptos" "$@"; fi
    if command -v cargo-leptos >/dev/null; then exec cargo-leptos "$@"; fi
    echo "error: no such command: \`leptos\`" >&2
    exit 101 ;;
  *) log "cargo $*" ;;
esac'

  # rustup: targets are lines of a file under RUSTUP_HOME.
  stub rustup '
state=${RUSTUP_HOME:-$HOME/.rustup}/stub-targets
if [ "$*" = "target list --installed" ]; then
  log "? rustup $*"
  echo '"$host_target"'
  cat "$state" 2>/dev/null || true
  exit 0
fi
log "rustup $*"
if [ "${1:-}" = target ] && [ "${2:-}" = add ]; then
  mkdir -p "${state%/*}"
  shift 2
  for t in "$@"; do echo "$t" >> "$state"; done
fi'

  # npm ci: needs the lock file in its directory, replaces node_modules, and
  # leaves the wasm-opt of binaryen in node_modules/.bin.
  stub npm '
dir=${PWD#"$repo"}; dir=${dir#/}
info="cwd=${dir:-.}"
[ -z "${PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD:-}" ] || info="$info PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=$PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"
log "npm $* {$info}"
if [ "${1:-}" = ci ]; then
  [ -f package-lock.json ] || { echo "npm error The \`npm ci\` command can only install with an existing package-lock.json" >&2; exit 1; }
  rm -rf node_modules
  "$make_tool" node_modules/.bin/wasm-opt wasm-opt "wasm-opt version 132"
fi'

  stub node '
log "? node $*"
echo v20.19.2'
}

# --- the state a case starts from ---------------------------------------------

set_conf() { printf '%s=%s\n' "$1" "$2" >> "$c/conf"; }
as_root() { set_conf uid 0; }
no_sudo() { rm -f "$c/stubs/sudo"; }
have_wasm_target() { mkdir -p "$c/home/.rustup"; echo wasm32-unknown-unknown >> "$c/home/.rustup/stub-targets"; }
have_cargo_leptos() { "$c/make-tool" "$c/home/.cargo/bin/cargo-leptos" cargo-leptos "cargo-leptos $1"; }
have_wasm_bindgen() { "$c/make-tool" "$c/home/.cargo/bin/wasm-bindgen" wasm-bindgen "wasm-bindgen $1"; }
have_chromium() { "$c/make-tool" "$c/sysbin/chromium" chromium "Chromium 140.0 built on Debian"; }
have_shellcheck() { "$c/make-tool" "$c/sysbin/shellcheck" shellcheck "ShellCheck - shell script analysis tool"; }
# have_npm_packages [STAMP]: node_modules with wasm-opt, stamped with the
# lock file's hash (or with STAMP).
have_npm_packages() {
  "$c/make-tool" "$c/repo/end2end/node_modules/.bin/wasm-opt" wasm-opt "wasm-opt version 132"
  if [ -n "${1:-}" ]; then
    echo "$1" > "$c/repo/end2end/node_modules/.installed-from-lock"
  else
    sha256sum < "$c/repo/end2end/package-lock.json" > "$c/repo/end2end/node_modules/.installed-from-lock"
  fi
}
have_everything() {
  have_wasm_target
  have_cargo_leptos "$leptos"
  have_wasm_bindgen "$wbg"
  have_chromium
  have_shellcheck
  have_npm_packages
}

# --- running and checking -----------------------------------------------------

# setup_run: ./dev.sh setup in the case's world, with nothing of this
# environment but extra_env; sets rc and out.
setup_run() {
  : > "$c/calls"
  rc=0
  (cd "$c/repo" && env -i HOME="$c/home" PATH="$c/stubs:$c/sysbin:$utils" \
    DEBIAN_CHROMIUM="$c/sysbin/chromium" ${extra_env[@]+"${extra_env[@]}"} \
    "$bash_bin" ./dev.sh setup) > "$c/out" 2>&1 || rc=$?
  out=$(cat "$c/out")
}

problem() { problems+="$*"$'\n'; }

# expect_calls: stdin lists the install commands that must have run, in order.
expect_calls() {
  local expected actual
  expected=$(cat)
  actual=$(grep -v -e '^? ' -e '^~ ' "$c/calls" || true)
  if [ "$expected" != "$actual" ]; then
    problem "install commands, expected (-) vs actual (+):"
    problem "$(diff -u <(printf '%s\n' "$expected" | grep -v '^$' || true) \
      <(printf '%s\n' "$actual" | grep -v '^$' || true) | awk 'NR > 2')"
  fi
}

expect_success() { [ "$rc" = 0 ] || problem "setup exited $rc, expected 0"; }
expect_failure() { [ "$rc" != 0 ] || problem "setup exited 0, expected a failure"; }

# expect_output TEXT: the output of setup contains TEXT (fixed string).
expect_output() { grep -qF -- "$1" "$c/out" || problem "output lacks: $1"; }
expect_no_output() { ! grep -qF -- "$1" "$c/out" || problem "output has: $1"; }

# again_installs_nothing: what the first run installed is seen as current.
again_installs_nothing() {
  [ "$rc" = 0 ] || return 0 # the first run failed; that is reported already
  mv "$c/calls" "$c/calls.first"
  mv "$c/out" "$c/out.first"
  setup_run
  expect_success
  local again
  again=$(grep -v -e '^? ' -e '^~ ' "$c/calls" || true)
  [ -z "$again" ] || problem "a second run installed again:"$'\n'"$again"
}

end_case() {
  if [ -z "$problems" ]; then
    printf 'ok      %s\n' "$name"
  else
    failures=$((failures + 1))
    printf 'FAILED  %s\n' "$name"
    printf '%s' "$problems" | awk '{ print "    " $0 }'
    local run
    for run in first ""; do
      [ -e "$c/calls${run:+.$run}" ] || continue
      echo "    --- call log${run:+ of the first run}:"
      awk '{ print "    " $0 }' "$c/calls${run:+.$run}"
      echo "    --- output of ./dev.sh setup${run:+, first run}:"
      awk '{ print "    " $0 }' "$c/out${run:+.$run}"
    done
  fi
}

# --- the cases ----------------------------------------------------------------

new_case "nothing installed, root (no sudo on the machine)"
as_root
no_sudo
setup_run
expect_success
expect_calls <<EOF
$rustup_add
$leptos_install
$wbg_install
apt-get update -qq {as=root}
apt-get install -y -qq chromium shellcheck {as=root DEBIAN_FRONTEND=noninteractive}
$npm_ci
EOF
again_installs_nothing
end_case

new_case "nothing installed, not root, sudo present"
setup_run
expect_success
expect_calls <<EOF
$rustup_add
$leptos_install
$wbg_install
apt-get update -qq {as=sudo}
apt-get install -y -qq chromium shellcheck {as=sudo DEBIAN_FRONTEND=noninteractive}
$npm_ci
EOF
again_installs_nothing
end_case

new_case "not root, no sudo: fails naming apt-get install"
no_sudo
setup_run
expect_failure
expect_output "apt-get install chromium shellcheck"
[[ ${out##*$'\n'} == error:*"apt-get install"* ]] || problem "the last line is not the error"
[ ! -e "$c/repo/end2end/node_modules" ] || problem "npm packages installed after the failure"
expect_calls <<EOF
$rustup_add
$leptos_install
$wbg_install
EOF
end_case

new_case "everything current: installs nothing"
have_everything
setup_run
expect_success
expect_calls < /dev/null
end_case

new_case "everything current, root without sudo: installs nothing"
as_root
no_sudo
have_everything
setup_run
expect_success
expect_calls < /dev/null
end_case

new_case "wrong versions: reinstalls cargo-leptos, wasm-bindgen, npm packages"
have_everything
have_cargo_leptos 0.3.9
have_wasm_bindgen 0.2.100
have_npm_packages "0000000000000000000000000000000000000000000000000000000000000000  -"
setup_run
expect_success
expect_calls <<EOF
$leptos_install
$wbg_install
$npm_ci
EOF
again_installs_nothing
end_case

new_case "CHROMIUM_PATH names nothing: warns, installs Debian's chromium"
have_everything
rm "$c/sysbin/chromium"
extra_env=(CHROMIUM_PATH=/nonexistent)
setup_run
expect_success
expect_output "warning: CHROMIUM_PATH=/nonexistent is not an executable"
[ -x "$c/sysbin/chromium" ] || problem "Debian's chromium is not there"
expect_calls <<EOF
apt-get update -qq {as=sudo}
apt-get install -y -qq chromium {as=sudo DEBIAN_FRONTEND=noninteractive}
EOF
end_case

new_case "CHROMIUM_PATH names a browser: Debian's chromium not needed"
have_everything
rm "$c/sysbin/chromium" "$c/sysbin/shellcheck"
"$c/make-tool" "$c/elsewhere/chrome" chrome "Google Chrome"
extra_env=(CHROMIUM_PATH="$c/elsewhere/chrome")
setup_run
expect_success
expect_no_output "warning"
expect_calls <<EOF
apt-get update -qq {as=sudo}
apt-get install -y -qq shellcheck {as=sudo DEBIAN_FRONTEND=noninteractive}
EOF
end_case

new_case "apt-get fails: exits non-zero naming the package"
as_root
no_sudo
have_everything
rm "$c/sysbin/chromium"
set_conf apt_fail 1
setup_run
expect_failure
expect_output "'apt-get install chromium' failed"
expect_calls <<EOF
apt-get update -qq {as=root}
apt-get install -y -qq chromium {as=root DEBIAN_FRONTEND=noninteractive}
EOF
end_case

new_case "CARGO_HOME elsewhere: tools installed there are found next time"
as_root
no_sudo
extra_env=(CARGO_HOME="$c/cargo-home")
setup_run
expect_success
expect_calls <<EOF
$rustup_add
$leptos_install
$wbg_install
apt-get update -qq {as=root}
apt-get install -y -qq chromium shellcheck {as=root DEBIAN_FRONTEND=noninteractive}
$npm_ci
EOF
[ ! -e "$c/home/.cargo" ] || problem "installed into \$HOME/.cargo despite CARGO_HOME"
again_installs_nothing
end_case

if [ "$failures" != 0 ]; then
  echo "$failures of $n cases FAILED"
  exit 1
fi
echo "all $n cases ok"
