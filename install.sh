#!/usr/bin/env bash
# Builds paperclipctl from this checkout and installs it where cargo installs binaries
# ($CARGO_HOME/bin, normally ~/.cargo/bin), or into $PREFIX/bin when PREFIX is set, with its
# manual pages in share/man/man1 beside it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo is not installed; get a Rust toolchain from https://rustup.rs and run this again" >&2
  exit 1
fi

root=${PREFIX:-${CARGO_HOME:-$HOME/.cargo}}
cargo install --quiet --locked --force --path . --root "$root"
bin="$root/bin/paperclipctl"
"$bin" man --dir "$root/share/man/man1"
echo "installed $("$bin" --version) at $bin, manual pages in $root/share/man/man1"
echo "shell completion: paperclipctl completions bash|zsh|fish (see paperclipctl completions --help)"
case ":$PATH:" in
  *":$root/bin:"*) ;;
  *) echo "note: $root/bin is not on your PATH; add it, or run $bin directly" >&2 ;;
esac
