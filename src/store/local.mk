libsgblk_a_SOURCES += \
	include/store.h \
	src/store/file.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-store-file
TESTS += tests/test-store-file
UNIT_TESTS += tests/test-store-file
tests_test_store_file_SOURCES = tests/test-store-file.c
tests_test_store_file_CFLAGS = $(TEST_CFLAGS)
tests_test_store_file_LDADD = $(TEST_LDADD)

endif
