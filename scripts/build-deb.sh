#!/usr/bin/env bash
# Builds hostscope_<version>_amd64.deb with Debian's own tooling (dpkg-buildpackage + debhelper, files in
# packaging/debian/) and checks it with lintian (fails on any lintian error).
#
# Usage: scripts/build-deb.sh [--prebuilt BUILD_DIR] [--no-lintian] [OUT_DIR]     (OUT_DIR default: build-deb)
#   default       copies the source tree (git-tracked and untracked-but-not-ignored files) to
#                 OUT_DIR/src/hostscope-<version>/ and builds it from scratch there (CMake, tests off).
#   --prebuilt D  packages the binary of the existing CMake build D of this same source tree instead
#                 (brings D's `hostscope` target up to date first and checks its version); used by the test suite
#                 so the package is not compiled twice.
# Output: OUT_DIR/hostscope_<version>_amd64.deb (+ -dbgsym .deb, .buildinfo, .changes, lintian.txt).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

prebuilt="" lintian=1 out=""
while (($#)); do
    case $1 in
        --prebuilt) prebuilt=$(cd "${2:?--prebuilt needs a build directory}" && pwd); shift 2 ;;
        --no-lintian) lintian=0; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
        *) out=$1; shift ;;
    esac
done
out=${out:-$src/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-buildpackage dh dpkg-parsechangelog help2man; do
    command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool missing (bash scripts/setup.sh --no-build)" >&2; exit 2; }
done

# One version everywhere: CMake's project() and debian/changelog must agree.
version=$(sed -n 's/^project(hostscope VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
if [ "$version" != "$deb_version" ]; then
    echo "build-deb.sh: CMakeLists.txt says $version but packaging/debian/changelog says $deb_version" >&2
    exit 1
fi

if [ -n "$prebuilt" ]; then
    home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$prebuilt/CMakeCache.txt" 2>/dev/null || true)
    if [ "$home" != "$src" ]; then
        echo "build-deb.sh: $prebuilt is a build of '${home:-nothing}', not of $src" >&2
        exit 1
    fi
    cmake --build "$prebuilt" --target hostscope
    got=$("$prebuilt/hostscope" --version)
    if [ "$got" != "hostscope $version" ]; then
        echo "build-deb.sh: $prebuilt/hostscope reports '$got', expected 'hostscope $version'" >&2
        exit 1
    fi
fi

# A clean copy of the source tree with debian/ at its top, as dpkg-buildpackage wants it.
stage=$out/src/hostscope-$version
rm -rf "$out/src"
mkdir -p "$stage"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        [ -e "$f" ] && printf '%s\0' "$f"
    done | tar --null -T - -cf -) | tar -xf - -C "$stage"
else
    tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$stage"
fi
rm -rf "$stage/debian"
cp -a "$src/packaging/debian" "$stage/debian"

(
    cd "$stage"
    export HOSTSCOPE_PREBUILT=$prebuilt
    dpkg-buildpackage -b -us -uc
) >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log" >&2; echo "build-deb.sh: dpkg-buildpackage failed (log: $out/build.log)" >&2; exit 1; }

rm -f "$out"/hostscope_*.deb "$out"/hostscope-dbgsym_*.deb "$out"/hostscope_*.buildinfo "$out"/hostscope_*.changes
mv "$out/src"/hostscope_"$version"_* "$out"/
[ -e "$out/src/hostscope-dbgsym_${version}_amd64.deb" ] && mv "$out/src/hostscope-dbgsym_${version}_amd64.deb" "$out"/
rm -rf "$out/src"
deb=$out/hostscope_${version}_amd64.deb
[ -f "$deb" ] || { echo "build-deb.sh: $deb was not produced" >&2; exit 1; }

if ((lintian)); then
    # Errors fail the build; warnings and notes are shown.
    if ! lintian --fail-on error --info "$out/hostscope_${version}_amd64.changes" >"$out/lintian.txt" 2>&1; then
        cat "$out/lintian.txt" >&2
        echo "build-deb.sh: lintian reported errors" >&2
        exit 1
    fi
    cat "$out/lintian.txt"
fi
echo "$deb"
