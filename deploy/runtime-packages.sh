#!/bin/sh
# Prints the Debian packages holding the shared libraries that the programs
# given load, one a line: what the runtime image installs, read off the
# binaries the build made instead of kept by hand beside the build's list.
set -eu
libs=""
for bin in "$@"; do
    out=$(ldd "$bin")
    libs="$libs $(printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')"
done
pkgs=""
for lib in $libs; do
    pkg=""
    # Debian 12 merged /lib into /usr/lib, and dpkg knows each file by the
    # path its package ships it at: try the name and its target, each with
    # and without /usr.
    for p in "$lib" "$(readlink -f "$lib")"; do
        case "$p" in
        /usr/*) alt=${p#/usr} ;;
        *) alt=/usr$p ;;
        esac
        for q in "$p" "$alt"; do
            [ -n "$pkg" ] || pkg=$(dpkg -S "$q" 2>/dev/null | head -n1 | cut -d: -f1) || true
        done
    done
    if [ -z "$pkg" ]; then
        echo "runtime-packages: no Debian package holds $lib" >&2
        exit 1
    fi
    pkgs="$pkgs $pkg"
done
[ -n "$pkgs" ] || { echo "runtime-packages: no shared libraries found" >&2; exit 1; }
printf '%s\n' $pkgs | sort -u
