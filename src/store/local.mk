libsgblk_a_SOURCES += \
	include/store.h \
	src/store/memory.c \
	src/store/file.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-store-memory
TESTS += tests/test-store-memory
UNIT_TESTS += tests/test-store-memory
tests_test_store_memory_SOURCES = tests/test-store-memory.c
tests_test_store_memory_CFLAGS = $(TEST_CFLAGS)
tests_test_store_memory_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-store-file
TESTS += tests/test-store-file
UNIT_TESTS += tests/test-store-file
tests_test_store_file_SOURCES = tests/test-store-file.c
tests_test_store_file_CFLAGS = $(TEST_CFLAGS)
tests_test_store_file_LDADD = $(TEST_LDADD)

endif
