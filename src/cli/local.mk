libsgblk_a_SOURCES += \
	include/cli.h \
	src/cli/cli.c \
	src/cli/config.c \
	src/cli/internal.h

if HAVE_CMOCKA
check_PROGRAMS += tests/test-cli-parse
TESTS += tests/test-cli-parse
UNIT_TESTS += tests/test-cli-parse
tests_test_cli_parse_SOURCES = tests/test-cli-parse.c
tests_test_cli_parse_CFLAGS = $(TEST_CFLAGS)
tests_test_cli_parse_LDADD = $(TEST_LDADD)
endif
