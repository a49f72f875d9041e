#!/usr/bin/env bash
# Generates the hostscope(1) man page from the binary's own --help and every subcommand's --help (help2man),
# so the page always matches the program. Usage: packaging/gen-manpage.sh BINARY > hostscope.1
# SOURCE_DATE_EPOCH (set by dpkg-buildpackage) makes the date reproducible.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Run it as plain `hostscope` so usage lines do not show the build path.
ln -s "$(realpath "${1:?usage: gen-manpage.sh BINARY}")" "$work/hostscope"
export PATH=$work:$PATH
bin=hostscope
inc=$work/include

subcommands() { "$bin" "$@" --help | awk '$0 == "Subcommands:" { on = 1; next } on && /^[^ ]/ { on = 0 } on && /^  [^ ]/ { print $1 }'; }
# roff: a literal backslash is \e; a line starting with . or ' would be a request.
roff_literal() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }

emit() {  # the subcommand path, e.g. "policy apply"
    echo ".SS \"hostscope $*\""
    echo ".nf"
    "$bin" "$@" --help | sed '1{/^hostscope: /d}' | roff_literal
    echo ".fi"
    local s
    for s in $(subcommands "$@"); do emit "$@" "$s"; done
}

{
    echo "[COMMANDS]"
    echo "Every subcommand and its options, as printed by \\fBhostscope\\fR \\fIsubcommand\\fR \\fB\\-\\-help\\fR."
    for s in $(subcommands); do emit "$s"; done
    cat "$here/hostscope.1.in"
} >"$inc"

help2man --no-info --section=1 --name="eBPF host network observability for Kubernetes nodes" \
    --include="$inc" "$bin"
