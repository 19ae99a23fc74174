libsgblk_a_SOURCES += \
	include/be.h \
	include/nbd.h \
	src/nbd/internal.h \
	src/nbd/protocol.h \
	src/nbd/server.c \
	src/nbd/session.c \
	src/nbd/handshake.c \
	src/nbd/workq.c \
	src/nbd/exec.c \
	src/nbd/send.c \
	src/nbd/conn.c \
	src/nbd/wire.c \
	src/nbd/validate.c \
	src/nbd/refuse.c \
	src/nbd/thread.c \
	src/nbd/tls.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-nbd-handshake-malformed
TESTS += tests/test-nbd-handshake-malformed
UNIT_TESTS += tests/test-nbd-handshake-malformed
tests_test_nbd_handshake_malformed_SOURCES = tests/test-nbd-handshake-malformed.c tests/nbd-test-client.h
tests_test_nbd_handshake_malformed_CFLAGS = $(TEST_CFLAGS)
tests_test_nbd_handshake_malformed_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-nbd-requests
TESTS += tests/test-nbd-requests
UNIT_TESTS += tests/test-nbd-requests
tests_test_nbd_requests_SOURCES = tests/test-nbd-requests.c tests/nbd-test-client.h
tests_test_nbd_requests_CFLAGS = $(TEST_CFLAGS)
tests_test_nbd_requests_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/test-nbd-an-inherited-socket-is-checked-served-and-its-path-kept
TESTS += tests/test-nbd-an-inherited-socket-is-checked-served-and-its-path-kept
UNIT_TESTS += tests/test-nbd-an-inherited-socket-is-checked-served-and-its-path-kept
tests_test_nbd_an_inherited_socket_is_checked_served_and_its_path_kept_SOURCES = \
	tests/test-nbd-an-inherited-socket-is-checked-served-and-its-path-kept.c \
	tests/nbd-test-client.h
tests_test_nbd_an_inherited_socket_is_checked_served_and_its_path_kept_CFLAGS = $(TEST_CFLAGS)
tests_test_nbd_an_inherited_socket_is_checked_served_and_its_path_kept_LDADD = $(TEST_LDADD)

endif

if HAVE_CMOCKA
check_PROGRAMS += tests/test-nbd-cleanup-after-a-vanished-client-releases-everything
TESTS += tests/test-nbd-cleanup-after-a-vanished-client-releases-everything
UNIT_TESTS += tests/test-nbd-cleanup-after-a-vanished-client-releases-everything
tests_test_nbd_cleanup_after_a_vanished_client_releases_everything_SOURCES = tests/test-nbd-cleanup-after-a-vanished-client-releases-everything.c tests/nbd-test-client.h
tests_test_nbd_cleanup_after_a_vanished_client_releases_everything_CFLAGS = $(TEST_CFLAGS)
tests_test_nbd_cleanup_after_a_vanished_client_releases_everything_LDADD = $(TEST_LDADD)
endif
