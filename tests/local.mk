# Shell integration tests: the daemon driven by real NBD clients.
SHELL_TESTS = \
	tests/test-config-tls-from-the-file-serves-every-export-only-over-tls.sh \
	tests/test-config-a-removed-exports-fuse-file-stays-until-its-last-open-is-closed.sh \
	tests/test-config-a-failing-store-costs-the-other-exports-nothing.sh \
	tests/test-config-a-stalled-export-holds-every-worker-but-one.sh \
	tests/test-config-errors-name-the-file-and-line-and-sections-override-the-command-line.sh \
	tests/test-config-sighup-adds-removes-and-keeps-exports-without-dropping-clients.sh \
	tests/test-config-exports-are-listed-and-a-full-one-costs-the-others-nothing.sh \
	tests/test-bench-suite-writes-its-tables-and-plots.sh \
	tests/test-cache-block-rewritten-during-write-back-stays-dirty.sh \
	tests/test-cache-disconnect-with-64-writes-in-flight-and-cache-full.sh \
	tests/test-cache-ext4-image-compresses-in-the-memory-disk.sh \
	tests/test-cache-mem-limit-full-gives-enospc-and-trim-recovers.sh \
	tests/test-crash-with-16-writes-in-flight-keeps-every-flushed-and-fua-write.sh \
	tests/test-daemon-stats-file-a-failed-rewrite-is-said-once-and-serving-goes-on.sh \
	tests/test-daemon-stats-file-cache-and-pool-figures-follow-reads-writes-flushes-and-eviction.sh \
	tests/test-daemon-stats-file-counts-what-clients-did.sh \
	tests/test-daemon-stats-file-is-read-by-node-exporter.sh \
	tests/test-daemon-stats-file-is-replaced-whole-never-seen-in-part.sh \
	tests/test-docs-man-page-help-and-readme-in-step.sh \
	tests/test-fio-verify-two-connections.sh \
	tests/test-fuse-and-nbd-serve-the-same-unit-coherently.sh \
	tests/test-fuse-file-reads-writes-fsync-punch-and-zero.sh \
	tests/test-fuse-loop-device-mkfs-mount-fsck-and-restart.sh \
	tests/test-fuse-swap-on-the-loop-device-under-a-memory-cgroup.sh \
	tests/test-fuse-unmount-and-stale-mounts-are-handled.sh \
	tests/test-fuzz-seeds-and-regressions-replay-cleanly.sh \
	tests/test-guest-nbd-client-mkfs-fsck-and-second-boot.sh \
	tests/test-guest-nbd-client-over-tls-with-a-client-certificate-mkfs-and-fsck.sh \
	tests/test-guest-swap-through-nbd0-under-a-memory-cgroup.sh \
	tests/test-nbd-1000-connections-dropped-at-every-stage.sh \
	tests/test-nbd-2000-idle-connections-under-a-1024-descriptor-limit.sh \
	tests/test-nbd-a-client-that-never-reads-costs-other-clients-nothing.sh \
	tests/test-nbd-a-reply-never-reaches-another-client.sh \
	tests/test-nbd-a-silent-client-is-dropped-after-the-handshake-timeout.sh \
	tests/test-nbd-and-fuse-racing-on-the-same-sectors-lose-no-update.sh \
	tests/test-nbd-bad-clients-cost-other-clients-nothing.sh \
	tests/test-nbd-busy-polling-stops-when-connections-go-idle.sh \
	tests/test-nbd-every-size-to-the-maximum-round-trips-at-odd-offsets.sh \
	tests/test-nbd-idle-timeout-closes-only-idle-connections.sh \
	tests/test-nbd-fua-write-keeps-a-concurrent-write-to-the-same-block.sh \
	tests/test-nbd-mem-limit-never-promises-space-it-may-not-have.sh \
	tests/test-nbd-memory-stays-bounded-behind-a-client-that-never-reads.sh \
	tests/test-nbd-multi-conn-flush-is-visible-across-connections.sh \
	tests/test-nbd-read-only-export-refuses-writes.sh \
	tests/test-nbd-tls-a-client-that-never-reads-costs-other-clients-nothing.sh \
	tests/test-nbd-tls-bad-clients-are-refused-with-one-line-and-cost-others-nothing.sh \
	tests/test-nbd-tls-psk-nbdinfo-and-nbdcopy-round-trip-on-a-unix-socket.sh \
	tests/test-nbd-tls-qemu-img-convert-and-compare-with-tls-creds-x509.sh \
	tests/test-nbd-tls-starttls-starts-negotiation-over-and-forgets-what-came-before.sh \
	tests/test-nbd-tls-x509-over-tcp-with-and-without-client-certificates.sh \
	tests/test-nbd-unaligned-requests-are-read-modify-written.sh \
	tests/test-nbd-whole-device-trim-and-zero-in-one-request.sh \
	tests/test-nbd-write-past-end.sh \
	tests/test-nbd-zero-length-requests-get-a-clean-answer.sh \
	tests/test-nbdcopy-256m-of-random-data-round-trips.sh \
	tests/test-nbdinfo-shows-size-block-sizes-and-flags.sh \
	tests/test-qemu-img-convert-and-compare.sh \
	tests/test-qemu-io-patterns-fua-discard-and-write-zeroes.sh \
	tests/test-rbd-a-silent-cluster-holds-neither-start-nor-exit-past-the-timeout.sh \
	tests/test-rbd-a-stopped-osd-gives-eio-after-the-timeout-and-costs-other-exports-nothing.sh \
	tests/test-rbd-cephx-a-wrong-missing-or-unknown-key-is-one-line-and-exit-1.sh \
	tests/test-rbd-image-round-trips-matches-qemus-driver-and-has-one-writer.sh \
	tests/test-rbd-sigkill-while-writing-keeps-every-flushed-write-in-the-image.sh \
	tests/test-rbd-without-the-cache-librbds-own-cache-is-as-configured-and-a-flush-makes-writes-durable.sh \
	tests/test-rbd-without-the-cache-requests-in-flight-hold-no-worker.sh \
	tests/test-sgblkd-daemon-mode-pidfile-and-sigterm.sh \
	tests/test-sgblkd-every-option-with-good-edge-and-nonsense-values.sh \
	tests/test-sgblkd-runtime-errors-exit-1-usage-errors-exit-2.sh \
	tests/test-sgblkd-tls-key-files-that-cannot-be-used-stop-the-start.sh \
	tests/test-sigterm-with-writes-in-flight-keeps-acknowledged-writes.sh \
	tests/test-spill-lets-a-1g-disk-in-64m-of-memory-hold-512m-of-mixed-data.sh \
	tests/test-store-a-file-truncated-under-the-daemon-gets-eio-and-keeps-its-size.sh \
	tests/test-store-erofs-from-the-file-is-eio-not-eperm-and-enospc-keeps-dirty-data.sh \
	tests/test-store-faults-give-eio-and-keep-data-outside-the-window.sh \
	tests/test-swap-mode-a-4g-disk-costs-what-it-holds.sh \
	tests/test-swap-mode-fuse-io-allocates-only-inside-libfuse.sh \
	tests/test-swap-mode-locks-memory-and-says-what-it-could-not-do.sh \
	tests/test-swap-mode-nbd-io-makes-no-allocator-calls.sh \
	tests/test-swap-stress-hog-on-fuse-loop-swap-while-nbdcopy-round-trips.sh \
	tests/test-swap-stress-hog-with-a-spill-file.sh \
	tests/test-systemd-notify-says-ready-only-once-serving-then-stopping.sh \
	tests/test-systemd-notify-with-a-config-file-names-the-exports-and-says-each-reload.sh \
	tests/test-systemd-socket-activation-serves-the-sockets-systemd-passed.sh \
	tests/test-systemd-units-verify-cleanly-and-install-with-the-sbindir.sh

TESTS += $(SHELL_TESTS)
# The RBD tests' single-node Ceph cluster.
EXTRA_DIST += tests/ceph-functions.sh
# Stand-ins for systemd's socket passing and notification socket.
EXTRA_DIST += tests/listen_fds.py tests/notify_listener.py
# Needs systemd as PID 1, so it is not in make check (see its header).
EXTRA_DIST += contrib/systemd/check-systemctl-starts-the-service-on-the-first-connection.sh
EXTRA_DIST += $(SHELL_TESTS) tests/functions.sh tests/nbd_raw.py tests/race_sectors.py tests/crash_client.py contrib/guest/init contrib/guest/serial-bridge.c contrib/guest/hog.c contrib/guest/build-initramfs.sh tests/nbd_stall.py
EXTRA_DIST += tests/tls-functions.sh

# The benchmark suite, which a shell test runs in its quick mode.
EXTRA_DIST += contrib/bench/run.sh contrib/bench/common.sh contrib/bench/nbd.sh \
	contrib/bench/nbd-compressible.sh contrib/bench/nbd-multiconn.sh \
	contrib/bench/nbd-file.sh contrib/bench/fuse.sh contrib/bench/compress.sh \
	contrib/bench/fuse-swap.sh contrib/bench/nbd-rbd.sh
EXTRA_DIST += contrib/bench/nbd-tls.sh

# The allocator-call counter that swap-mode tests preload into the daemon
# (tests/alloc-count.c).  Built without the sanitizers: it must be the
# first allocator in the process.
check_DATA = tests/alloc-count.so
tests/alloc-count.so: tests/alloc-count.c
	@mkdir -p tests
	$(AM_V_CC)$(CC) $(WARN_CFLAGS) -O2 -g -shared -fPIC -o $@ $< -ldl
CLEANFILES += tests/alloc-count.so
EXTRA_DIST += tests/alloc-count.c

# sgblkd with its test hooks, for the tests that inject failures (see
# requires_test_hooks in tests/functions.sh): the same daemon, which also
# takes SGBLK_TEST_CMD_FAIL_EVERY=N from the environment and makes every
# Nth normal command allocation fail.  Never installed: sgblkd has no
# test hooks.
check_PROGRAMS += tests/sgblkd-test
tests_sgblkd_test_SOURCES = src/main.c
tests_sgblkd_test_CPPFLAGS = $(AM_CPPFLAGS) -DSGBLK_TEST_HOOKS
tests_sgblkd_test_LDADD = $(sgblkd_LDADD)

# The fuzz targets as plain programs (tests/fuzz-replay.c): make check
# replays their seed corpora and regression inputs with them.
REPLAY_SOURCES = tests/fuzz-replay.c
check_PROGRAMS += \
	tests/replay-fuzz-scsi-cdb \
	tests/replay-fuzz-nbd-stream \
	tests/replay-fuzz-nbd-transmission \
	tests/replay-fuzz-cache-decode \
	tests/replay-fuzz-cli
tests_replay_fuzz_scsi_cdb_SOURCES = $(REPLAY_SOURCES) fuzz/fuzz-scsi-cdb.c
tests_replay_fuzz_scsi_cdb_LDADD = $(sgblkd_LDADD)
tests_replay_fuzz_nbd_stream_SOURCES = $(REPLAY_SOURCES) fuzz/fuzz-nbd-stream.c
tests_replay_fuzz_nbd_stream_LDADD = $(sgblkd_LDADD)
tests_replay_fuzz_nbd_transmission_SOURCES = $(REPLAY_SOURCES) fuzz/fuzz-nbd-transmission.c
tests_replay_fuzz_nbd_transmission_LDADD = $(sgblkd_LDADD)
tests_replay_fuzz_cache_decode_SOURCES = $(REPLAY_SOURCES) fuzz/fuzz-cache-decode.c
tests_replay_fuzz_cache_decode_LDADD = $(sgblkd_LDADD)
tests_replay_fuzz_cli_SOURCES = $(REPLAY_SOURCES) fuzz/fuzz-cli.c
tests_replay_fuzz_cli_LDADD = $(sgblkd_LDADD)
EXTRA_DIST += tests/fuzz-regressions

# The memory hog of the swap stress test.
check_PROGRAMS += tests/swap-stress-hog
tests_swap_stress_hog_SOURCES = tests/swap-stress-hog.c

if HAVE_CMOCKA
# Every allocator call of the modules passes through the test's counter.
check_PROGRAMS += tests/test-swap-mode-pools-make-no-allocator-calls
TESTS += tests/test-swap-mode-pools-make-no-allocator-calls
UNIT_TESTS += tests/test-swap-mode-pools-make-no-allocator-calls
tests_test_swap_mode_pools_make_no_allocator_calls_SOURCES = tests/test-swap-mode-pools-make-no-allocator-calls.c
tests_test_swap_mode_pools_make_no_allocator_calls_CFLAGS = $(TEST_CFLAGS)
tests_test_swap_mode_pools_make_no_allocator_calls_LDADD = $(TEST_LDADD)
tests_test_swap_mode_pools_make_no_allocator_calls_LDFLAGS = $(AM_LDFLAGS) \
	-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free \
	-Wl,--wrap=posix_memalign,--wrap=aligned_alloc,--wrap=mmap,--wrap=munmap \
	-Wl,--wrap=mprotect,--wrap=madvise,--wrap=mlock,--wrap=munlock

# The SCSI core and the write-back cache over the fault store.
check_PROGRAMS += tests/test-scsi-a-submitted-command-completes-once-and-a-read-modify-write-waits-for-it
TESTS += tests/test-scsi-a-submitted-command-completes-once-and-a-read-modify-write-waits-for-it
UNIT_TESTS += tests/test-scsi-a-submitted-command-completes-once-and-a-read-modify-write-waits-for-it
tests_test_scsi_a_submitted_command_completes_once_and_a_read_modify_write_waits_for_it_SOURCES = tests/test-scsi-a-submitted-command-completes-once-and-a-read-modify-write-waits-for-it.c tests/scsi-test-helpers.h
tests_test_scsi_a_submitted_command_completes_once_and_a_read_modify_write_waits_for_it_CFLAGS = $(TEST_CFLAGS)
tests_test_scsi_a_submitted_command_completes_once_and_a_read_modify_write_waits_for_it_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-scsi-store-faults-give-the-right-sense
TESTS += tests/test-scsi-store-faults-give-the-right-sense
UNIT_TESTS += tests/test-scsi-store-faults-give-the-right-sense
tests_test_scsi_store_faults_give_the_right_sense_SOURCES = tests/test-scsi-store-faults-give-the-right-sense.c tests/scsi-test-helpers.h
tests_test_scsi_store_faults_give_the_right_sense_CFLAGS = $(TEST_CFLAGS)
tests_test_scsi_store_faults_give_the_right_sense_LDADD = $(TEST_LDADD)
endif

# Shared by the qemu guest tests (tests/test-guest-*.sh).
EXTRA_DIST += tests/guest-functions.sh
