libsgblk_a_SOURCES += \
	include/daemon.h \
	src/daemon/daemon.c \
	src/daemon/metrics.c \
	src/daemon/stack.c \
	src/daemon/stats.c \
	src/daemon/swap.c
