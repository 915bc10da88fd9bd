#!/usr/bin/env bash
# Usage: scripts/no_compiler_path.sh DIR
# Fills DIR with links to every command on the current PATH except compilers (C, C++,
# Fortran, Rust: cc, gcc, g++, c++, cpp, clang, gfortran, rustc, cargo and their
# target-prefixed and versioned names), so that `PATH=DIR` is the machine as a
# Windows laptop without a compiler sees it. `make` installs geotijian and every
# dependency with PATH=DIR, CC=false and CXX=false: all must come as wheels or pure
# Python (issue 19).
set -euo pipefail
dir=$1
rm -rf "$dir"
mkdir -p "$dir"
is_compiler() {
  case "$1" in
    cc|c++|cpp|c89|c99|gcc|g++|clang|clang++|gfortran|f77|f95|rustc|cargo|tcc|icc|icx|icpx) return 0 ;;
    gcc-[0-9]*|g++-[0-9]*|cpp-[0-9]*|clang-[0-9]*|clang++-[0-9]*|gfortran-[0-9]*) return 0 ;;
    *-gcc|*-g++|*-cpp|*-gcc-[0-9]*|*-g++-[0-9]*|*-cpp-[0-9]*|*-gfortran*|*-clang*) return 0 ;;
  esac
  return 1
}
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    name=${f##*/}
    [ -x "$f" ] && [ ! -d "$f" ] || continue
    is_compiler "$name" && continue
    [ -e "$dir/$name" ] || ln -s "$f" "$dir/$name"  # (the first on PATH wins, as for the shell)
  done
done
for c in cc gcc g++ c++ clang rustc; do
  if PATH=$dir command -v "$c" >/dev/null 2>&1; then
    echo "no_compiler_path.sh: $c is still on the PATH" >&2
    exit 1
  fi
done
