#!/usr/bin/env bash
# The kernel's NBD client over TLS: Debian's nbd-client (3.24, linked with
# GnuTLS) in the qemu guest connects to a --tls=require --tls-verify-peer
# daemon with its certificate options (-cacertfile, -certfile, -keyfile,
# -tlshostname) over two connections; nbd-client does the TLS handshakes
# and then relays each connection's records for the kernel, which speaks
# plain NBD to it.  The guest makes and checks an ext4 filesystem; both
# connections negotiated TLS and end with NBD_CMD_DISC.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
. "${top_srcdir:-.}/tests/guest-functions.sh"

make_pki
# The client's files ride along in a cpio archive after the guest's own.
mkdir -p "$tmp/extra/tls"
cp "$tmp/client/ca-cert.pem" "$tmp/client/client-cert.pem" "$tmp/client/client-key.pem" "$tmp/extra/tls/"
(cd "$tmp/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/extra.cpio.gz"
cat "$guest/initrd.img" "$tmp/extra.cpio.gz" >"$tmp/initrd.img"
guest_initrd=$tmp/initrd.img

start_sgblkd tls -v --handshake-timeout 600 --size 256M --tls=require \
  --tls-certificates "$tmp/server" --tls-verify-peer
guest_daemon=tls
guest_boot mkfs "$sock" 2 300
guest_wait READY 120
tls_sessions=$(grep -c "TLS (TLS1" "$tmp/tls.log" || true)
negotiated=$(grep -c "transmission on export" "$tmp/tls.log" || true)
echo "daemon: $tls_sessions TLS sessions, $negotiated connections negotiated"
[ "$tls_sessions" -eq 2 ] && [ "$negotiated" -eq 2 ] ||
  fail "nbd-client did not negotiate TLS on both connections"
grep -q "nbd0: .*hardware queues (one per connection): 2" "$guest_log" || fail "nbd0 does not have two connections"
guest_answer
guest_wait IO-DONE 300
guest_answer
guest_finish 60
for q in $(seq 50); do
  [ "$(grep -c "client sent NBD_CMD_DISC" "$tmp/tls.log" || true)" -eq 2 ] && break
  sleep 0.1
done
[ "$(grep -c "client sent NBD_CMD_DISC" "$tmp/tls.log" || true)" -eq 2 ] ||
  fail "the guest did not disconnect both connections cleanly"
# Nothing went wrong but, where qemu could not run the guest under KVM
# and guest_boot retried, the aborted attempt's connections, closed
# before the client's flags.
aborted=$(grep -c "handshake failed: no client flags" "$tmp/tls.log" || true)
trouble=$(grep -E "warning|error" "$tmp/tls.log" | grep -v "handshake failed: no client flags" || true)
[ -z "$trouble" ] && [ "$aborted" -le "${guest_aborted_conns:-0}" ] ||
  { echo "$trouble"; fail "the daemon logged trouble"; }
stop_sgblkd tls
