#!/usr/bin/env bash
# The man page is lint-clean, and every option --help lists appears in
# the man page and the README.
. "${top_srcdir:-.}/tests/functions.sh"
requires mandoc

mandoc -Tlint -Wwarning "$top_srcdir/man/sgblkd.8" || fail "mandoc -Tlint found problems"
"$SGBLKD" --help >"$tmp/help"
"$SGBLKD" --version | grep -q '^sgblkd [0-9]' || fail "--version"
opts=$(grep -oE -- '--[a-z][a-z0-9-]+' "$tmp/help" | sort -u)
[ "$(echo "$opts" | wc -l)" -ge 16 ] || fail "--help lists too few options"
for o in $opts; do
  grep -q -- "Fl Fl ${o#--}" "$top_srcdir/man/sgblkd.8" || fail "man page lacks $o"
  grep -q -- "$o" "$top_srcdir/README.md" || fail "README lacks $o"
done
