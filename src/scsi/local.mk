libsgblk_a_SOURCES += \
	include/scsi.h \
	src/scsi/internal.h \
	src/scsi/cmd-pool.c \
	src/scsi/sense.c \
	src/scsi/cdb.c \
	src/scsi/lu.c \
	src/scsi/sbc.c \
	src/scsi/spc.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-scsi-commands
TESTS += tests/test-scsi-commands
UNIT_TESTS += tests/test-scsi-commands
tests_test_scsi_commands_SOURCES = tests/test-scsi-commands.c tests/scsi-test-helpers.h
tests_test_scsi_commands_CFLAGS = $(TEST_CFLAGS)
tests_test_scsi_commands_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-scsi-sense-errors
TESTS += tests/test-scsi-sense-errors
UNIT_TESTS += tests/test-scsi-sense-errors
tests_test_scsi_sense_errors_SOURCES = tests/test-scsi-sense-errors.c tests/scsi-test-helpers.h
tests_test_scsi_sense_errors_CFLAGS = $(TEST_CFLAGS)
tests_test_scsi_sense_errors_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-scsi-cmd-pool-reserve
TESTS += tests/test-scsi-cmd-pool-reserve
UNIT_TESTS += tests/test-scsi-cmd-pool-reserve
tests_test_scsi_cmd_pool_reserve_SOURCES = tests/test-scsi-cmd-pool-reserve.c tests/scsi-test-helpers.h
tests_test_scsi_cmd_pool_reserve_CFLAGS = $(TEST_CFLAGS)
tests_test_scsi_cmd_pool_reserve_LDADD = $(TEST_LDADD)

endif
