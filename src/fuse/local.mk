if HAVE_FUSE
libsgblk_a_SOURCES += \
	include/fusefront.h \
	src/fuse/fuse.c
endif
