libsgblk_a_SOURCES += \
	include/store.h \
	src/store/fault.c \
	src/store/file.c \
	src/store/rbd.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-store-file
TESTS += tests/test-store-file
UNIT_TESTS += tests/test-store-file
tests_test_store_file_SOURCES = tests/test-store-file.c
tests_test_store_file_CFLAGS = $(TEST_CFLAGS)
tests_test_store_file_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-store-wrappers-assert-their-preconditions
TESTS += tests/test-store-wrappers-assert-their-preconditions
UNIT_TESTS += tests/test-store-wrappers-assert-their-preconditions
tests_test_store_wrappers_assert_their_preconditions_SOURCES = tests/test-store-wrappers-assert-their-preconditions.c
tests_test_store_wrappers_assert_their_preconditions_CFLAGS = $(TEST_CFLAGS)
tests_test_store_wrappers_assert_their_preconditions_LDADD = $(TEST_LDADD)

endif
