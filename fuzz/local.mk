# libFuzzer targets (clang only): make fuzz, then run e.g.
#   ./fuzz/fuzz-scsi-cdb -max_total_time=60
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir)/include -I$(top_builddir) $(LZ4_CFLAGS) $(FUSE_CFLAGS) -pthread
FUZZ_SRC = $(filter-out %.h,$(libsgblk_a_SOURCES))
FUZZ_TARGETS = fuzz/fuzz-scsi-cdb fuzz/fuzz-nbd-stream
EXTRA_DIST += fuzz/fuzz-scsi-cdb.c fuzz/fuzz-nbd-stream.c

fuzz: $(FUZZ_TARGETS)
fuzz/fuzz-%: $(top_srcdir)/fuzz/fuzz-%.c $(addprefix $(top_srcdir)/,$(FUZZ_SRC))
	@mkdir -p fuzz
	$(CC) $(FUZZ_CFLAGS) -o $@ $< $(addprefix $(top_srcdir)/,$(FUZZ_SRC)) $(LZ4_LIBS) $(FUSE_LIBS)
CLEANFILES += $(FUZZ_TARGETS)
.PHONY: fuzz
