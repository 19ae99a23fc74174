#!/usr/bin/env bash
# qemu-img reaches a --tls=require --tls-verify-peer server over TCP with
# a tls-creds-x509 object (the client's certificate signed by the CA):
# convert writes an image into the export and compare finds the export
# equal to it; without the object, qemu-img is refused.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires qemu-img

make_pki
random_file "$tmp/in.img" 16
start_sgblkd_tcp q --size 16M --tls=require --tls-certificates "$tmp/server" --tls-verify-peer
creds="tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/client"
nbd="driver=raw,file.driver=nbd,file.host=localhost,file.port=$port,file.tls-creds=tls0"

qemu-img convert --object "$creds" -n -f raw "$tmp/in.img" --target-image-opts "$nbd" ||
  fail "qemu-img convert over TLS failed"
qemu-img compare --object "$creds" --image-opts \
  "driver=raw,file.driver=file,file.filename=$tmp/in.img" "$nbd" ||
  fail "qemu-img compare: the export differs from the image written over TLS"

# Change one byte in the image: compare must see it.
printf 'X' | dd of="$tmp/in.img" bs=1 seek=12345 conv=notrunc status=none
! qemu-img compare --object "$creds" --image-opts \
  "driver=raw,file.driver=file,file.filename=$tmp/in.img" "$nbd" >/dev/null ||
  fail "qemu-img compare over TLS missed a difference"

! qemu-img info "nbd://localhost:$port" >/dev/null 2>"$tmp/err" ||
  fail "qemu-img without TLS was served by a --tls=require server"
stop_sgblkd q
