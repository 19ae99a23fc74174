libsgblk_a_SOURCES += \
	include/log.h \
	include/sync.h \
	src/log/log.c
