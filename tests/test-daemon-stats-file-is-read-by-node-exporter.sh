#!/usr/bin/env bash
# The real reader: node_exporter's textfile collector takes the stats
# file as it is (no scrape error), and serves the sgblk_ figures with
# the export label, its name escaped as the format wants (a name with a
# double quote, a backslash and a space), HELP and TYPE included.
. "${top_srcdir:-.}/tests/functions.sh"
requires prometheus-node-exporter curl nbdsh

dir=$tmp/textfile
mkdir "$dir"
name='vol "one" \ two'
start_sgblkd mem --size 16M -e "$name" --stats-file "$dir/sgblk.prom" --stats-interval 1
nbdsh -c '
h.set_export_name('"'vol \"one\" \\\\ two'"')
h.connect_unix("'"$sock"'")
h.pwrite(b"\x01" * 65536, 0)
'

# Only the textfile collector: the others would slow every scrape.
for try in $(seq 10); do
  port=$(shuf -i 20000-60000 -n 1)
  prometheus-node-exporter --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory="$dir" --web.listen-address="127.0.0.1:$port" \
    >"$tmp/node-exporter.log" 2>&1 &
  ne=$!
  _daemons+=("$ne")
  for i in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/metrics" >/dev/null 2>&1 && break 2
    kill -0 "$ne" 2>/dev/null || break
    sleep 0.1
  done
  kill "$ne" 2>/dev/null || true
  grep -q "address already in use" "$tmp/node-exporter.log" || fail "node exporter did not start"
done

# The write above is in the file within the interval.
for i in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/scrape"
  grep -q '^sgblk_written_bytes_total{export="vol \\"one\\" \\\\ two"} 65536$' "$tmp/scrape" && break
  sleep 0.1
done
grep '^sgblk_' "$tmp/scrape" | head -n 20
grep -q '^node_textfile_scrape_error 0$' "$tmp/scrape" ||
  { grep textfile "$tmp/scrape" "$tmp/node-exporter.log"; fail "the textfile collector could not read the file"; }
grep -q '^sgblk_written_bytes_total{export="vol \\"one\\" \\\\ two"} 65536$' "$tmp/scrape" ||
  fail "node exporter does not serve the bytes written under the export's name"
grep -q '^sgblk_errors_total{export="vol \\"one\\" \\\\ two",kind="nospc"} 0$' "$tmp/scrape" ||
  fail "no errors by kind"
grep -q '^# TYPE sgblk_requests_total counter$' "$tmp/scrape" || fail "no TYPE line"
grep -q '^# HELP sgblk_cache_mem_used_bytes ' "$tmp/scrape" || fail "no HELP line"
grep -q '^sgblk_nbd_accepted_connections_total 1$' "$tmp/scrape" || fail "daemon-wide figures"
kill "$ne"
stop_sgblkd mem
