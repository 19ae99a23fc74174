libsgblk_a_SOURCES += \
	include/daemon.h \
	src/daemon/daemon.c \
	src/daemon/internal.h \
	src/daemon/metrics.c \
	src/daemon/rbd.c \
	src/daemon/stack.c \
	src/daemon/stats.c \
	src/daemon/swap.c \
	src/daemon/systemd.c

if HAVE_CMOCKA
check_PROGRAMS += tests/test-daemon-metrics-label-values-are-escaped
TESTS += tests/test-daemon-metrics-label-values-are-escaped
UNIT_TESTS += tests/test-daemon-metrics-label-values-are-escaped
tests_test_daemon_metrics_label_values_are_escaped_SOURCES = tests/test-daemon-metrics-label-values-are-escaped.c
tests_test_daemon_metrics_label_values_are_escaped_CFLAGS = $(TEST_CFLAGS)
tests_test_daemon_metrics_label_values_are_escaped_LDADD = $(TEST_LDADD)
endif

if HAVE_CMOCKA
check_PROGRAMS += tests/test-daemon-metrics-file-has-each-family-once-with-a-sample-per-export
TESTS += tests/test-daemon-metrics-file-has-each-family-once-with-a-sample-per-export
UNIT_TESTS += tests/test-daemon-metrics-file-has-each-family-once-with-a-sample-per-export
tests_test_daemon_metrics_file_has_each_family_once_with_a_sample_per_export_SOURCES = tests/test-daemon-metrics-file-has-each-family-once-with-a-sample-per-export.c
tests_test_daemon_metrics_file_has_each_family_once_with_a_sample_per_export_CFLAGS = $(TEST_CFLAGS)
tests_test_daemon_metrics_file_has_each_family_once_with_a_sample_per_export_LDADD = $(TEST_LDADD)
endif
