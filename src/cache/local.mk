libsgblk_a_SOURCES += \
	include/cache.h \
	src/cache/internal.h \
	src/cache/zpool.c \
	src/cache/map.c \
	src/cache/flusher.c

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
tests_test_cache_write_back_eviction_and_limits_SOURCES = tests/test-cache-write-back-eviction-and-limits.c
tests_test_cache_write_back_eviction_and_limits_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_write_back_eviction_and_limits_LDADD = $(TEST_LDADD)
endif
