libsgblk_a_SOURCES += \
	include/cache.h \
	src/cache/internal.h \
	src/cache/zpool.c \
	src/cache/map.c \
	src/cache/scratch.c \
	src/cache/flusher.c \
	src/cache/idle.c \
	src/cache/spill.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-cache-compressed-round-trips
TESTS += tests/test-cache-compressed-round-trips
UNIT_TESTS += tests/test-cache-compressed-round-trips
tests_test_cache_compressed_round_trips_SOURCES = tests/test-cache-compressed-round-trips.c
tests_test_cache_compressed_round_trips_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_compressed_round_trips_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-cache-write-back-eviction-and-limits
TESTS += tests/test-cache-write-back-eviction-and-limits
UNIT_TESTS += tests/test-cache-write-back-eviction-and-limits
tests_test_cache_write_back_eviction_and_limits_SOURCES = tests/test-cache-write-back-eviction-and-limits.c tests/cache-fake-backing.h
tests_test_cache_write_back_eviction_and_limits_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_write_back_eviction_and_limits_LDADD = $(TEST_LDADD)

# Reaches into the block map (internal.h) to damage an object in place.
check_PROGRAMS += tests/test-cache-a-corrupt-block-is-an-error-never-data
TESTS += tests/test-cache-a-corrupt-block-is-an-error-never-data
UNIT_TESTS += tests/test-cache-a-corrupt-block-is-an-error-never-data
tests_test_cache_a_corrupt_block_is_an_error_never_data_SOURCES = tests/test-cache-a-corrupt-block-is-an-error-never-data.c tests/cache-fake-backing.h
tests_test_cache_a_corrupt_block_is_an_error_never_data_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/cache
tests_test_cache_a_corrupt_block_is_an_error_never_data_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_a_corrupt_block_is_an_error_never_data_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-cache-reserve-writers-wait-fail-only-at-the-limit-and-memory-goes-back
TESTS += tests/test-cache-reserve-writers-wait-fail-only-at-the-limit-and-memory-goes-back
UNIT_TESTS += tests/test-cache-reserve-writers-wait-fail-only-at-the-limit-and-memory-goes-back
tests_test_cache_reserve_writers_wait_fail_only_at_the_limit_and_memory_goes_back_SOURCES = tests/test-cache-reserve-writers-wait-fail-only-at-the-limit-and-memory-goes-back.c
tests_test_cache_reserve_writers_wait_fail_only_at_the_limit_and_memory_goes_back_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_reserve_writers_wait_fail_only_at_the_limit_and_memory_goes_back_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-cache-concurrent-io-agrees-with-a-shadow-model
TESTS += tests/test-cache-concurrent-io-agrees-with-a-shadow-model
UNIT_TESTS += tests/test-cache-concurrent-io-agrees-with-a-shadow-model
tests_test_cache_concurrent_io_agrees_with_a_shadow_model_SOURCES = tests/test-cache-concurrent-io-agrees-with-a-shadow-model.c
tests_test_cache_concurrent_io_agrees_with_a_shadow_model_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_concurrent_io_agrees_with_a_shadow_model_LDADD = $(TEST_LDADD)
# Reaches into the block map (internal.h) to look at flags and damage an object.
check_PROGRAMS += tests/test-cache-idle-recompression-and-spill-keep-every-block
TESTS += tests/test-cache-idle-recompression-and-spill-keep-every-block
UNIT_TESTS += tests/test-cache-idle-recompression-and-spill-keep-every-block
tests_test_cache_idle_recompression_and_spill_keep_every_block_SOURCES = tests/test-cache-idle-recompression-and-spill-keep-every-block.c
tests_test_cache_idle_recompression_and_spill_keep_every_block_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src/cache
tests_test_cache_idle_recompression_and_spill_keep_every_block_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_idle_recompression_and_spill_keep_every_block_LDADD = $(TEST_LDADD)
endif

check_PROGRAMS += tests/test-cache-compaction-keeps-rewrites-in-place
TESTS += tests/test-cache-compaction-keeps-rewrites-in-place
UNIT_TESTS += tests/test-cache-compaction-keeps-rewrites-in-place
tests_test_cache_compaction_keeps_rewrites_in_place_SOURCES = tests/test-cache-compaction-keeps-rewrites-in-place.c
tests_test_cache_compaction_keeps_rewrites_in_place_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_compaction_keeps_rewrites_in_place_LDADD = $(TEST_LDADD)

