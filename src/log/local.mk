libsgblk_a_SOURCES += \
	include/log.h \
	src/log/log.c
