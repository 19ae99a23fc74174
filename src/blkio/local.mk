libsgblk_a_SOURCES += \
	include/blkio.h \
	src/blkio/blkio.c
