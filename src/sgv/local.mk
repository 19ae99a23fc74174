libsgblk_a_SOURCES += \
	include/sgv.h \
	src/sgv/sgv.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-sgv-pool-reuse-trim-flush
TESTS += tests/test-sgv-pool-reuse-trim-flush
UNIT_TESTS += tests/test-sgv-pool-reuse-trim-flush
tests_test_sgv_pool_reuse_trim_flush_SOURCES = tests/test-sgv-pool-reuse-trim-flush.c
tests_test_sgv_pool_reuse_trim_flush_CFLAGS = $(TEST_CFLAGS)
tests_test_sgv_pool_reuse_trim_flush_LDADD = $(TEST_LDADD)

endif
