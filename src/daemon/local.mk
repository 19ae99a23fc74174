libsgblk_a_SOURCES += \
	include/daemon.h \
	src/daemon/daemon.c \
	src/daemon/metrics.c \
	src/daemon/stack.c \
	src/daemon/stats.c \
	src/daemon/swap.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-daemon-metrics-label-values-are-escaped
TESTS += tests/test-daemon-metrics-label-values-are-escaped
UNIT_TESTS += tests/test-daemon-metrics-label-values-are-escaped
tests_test_daemon_metrics_label_values_are_escaped_SOURCES = tests/test-daemon-metrics-label-values-are-escaped.c
tests_test_daemon_metrics_label_values_are_escaped_CFLAGS = $(TEST_CFLAGS)
tests_test_daemon_metrics_label_values_are_escaped_LDADD = $(TEST_LDADD)
endif
