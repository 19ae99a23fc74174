#!/usr/bin/env bash
# A --config file with an error stops sgblkd at start with one line that
# names the file and the line (exit 2; exit 1 if it cannot be read).
# Options on the command line apply to every export, unless an export's
# section sets them.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdinfo jq

conf=$tmp/sgblkd.conf
# bad 'CONFIG' STATUS 'MESSAGE': sgblkd refuses CONFIG with exactly MESSAGE.
bad ()
{
  printf '%b' "$1" >"$conf"
  local status=0
  "$SGBLKD" -f -U "$tmp/s.sock" --config "$conf" >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq "$2" ] || fail "exit $status, not $2, for: $1 ($(cat "$tmp/err"))"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "not one line for: $1: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "stdout not empty for: $1"
  [ "$(cat "$tmp/err")" = "sgblkd: $conf$3" ] ||
    fail "for: $1
  got:  $(cat "$tmp/err")
  want: sgblkd: $conf$3"
}
bad '[a]\nsize = 1G\nsiz = 2G\n' 2 ":3: unknown key 'siz' (keys are sgblkd's long option names)"
bad '[a]\nport = 10810\n' 2 ":2: 'port' applies to the whole daemon: put it under [sgblkd] or on the command line"
bad '[a]\n[b]\n[a]\n' 2 ":3: export 'a' given twice (first at line 1)"
bad '[sgblkd]\nthreads = 2\n' 2 ": no exports: give each one a [NAME] section"
bad 'size = 1G\n[a]\n' 2 ":1: 'size' outside a section: put daemon-wide options under [sgblkd]"
bad '[a\n' 2 ":1: a section header is [NAME]"
bad '[a]\nread-only = maybe\n' 2 ":2: 'read-only' is yes or no, not 'maybe'"
bad '[a]\nsize\n' 2 ":2: 'size' needs a value ('size = ...')"
bad '[a]\nexport-name = b\n' 2 ":2: 'export-name' cannot be set: the section's [NAME] is the export's name"
bad '[a]\nsize = 1X\n' 2 ":2: export 'a': invalid size '1X' (use a number with an optional K, M, G or T suffix)"
bad "[a]\nfile = $tmp/f\n[b]\nfile = $tmp/f\n" 2 ":3: export 'b' serves $tmp/f, as export 'a' (line 1) does: one file, one cache"
bad '[sgblkd]\nthreads = 0\n[a]\n' 2 ":2: invalid thread count '0' (1-1024)"
bad "[a]\nfile = $tmp/f\nmem-limit = 64M\n" 2 ":1: export 'a': --mem-limit applies to the in-memory disk, not to FILE (use --cache-size)"
rm -f "$conf"
status=0; "$SGBLKD" -f --config "$conf" 2>"$tmp/err" || status=$?
[ "$status" -eq 1 ] && grep -q "^sgblkd: $conf: cannot read the configuration file: No such file or directory$" "$tmp/err" ||
  fail "a missing file: exit $status, $(cat "$tmp/err")"
status=0; "$SGBLKD" -f --config /dev/null disk.img 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] || fail "FILE with --config was accepted"

# -r on the command line: every export is read-only but the one whose
# section says read-only = no.
truncate -s 16M "$tmp/b.img"
printf '[a]\nsize = 16M\n\n[b]\nfile = %s\nread-only = no\n' "$tmp/b.img" >"$conf"
start_sgblkd cfg --config "$conf" --read-only
ro () { nbdinfo --json "nbd+unix:///$1?socket=$tmp/cfg.sock" | jq -r '.exports[0]."is_read_only"'; }
[ "$(ro a)" = true ] || fail "--read-only on the command line did not apply to export a"
[ "$(ro b)" = false ] || fail "read-only = no in b's section did not override the command line"
stop_sgblkd cfg
