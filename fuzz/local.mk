# libFuzzer targets (clang only): make fuzz, then run e.g.
#   ./fuzz/fuzz-scsi-cdb -max_total_time=60
# or all of them over their seed corpora: make fuzz-short (CI, a few
# seconds each) or make fuzz-long FUZZ_SECONDS=600.  New inputs go to
# fuzz-work/TARGET, never into the committed corpus: merge the few worth
# keeping by hand.  make check replays the corpus and the regression
# inputs under tests/fuzz-regressions through gcc-built drivers
# (tests/local.mk), so the targets must build with gcc too.
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined \
	-I$(top_srcdir)/include \
	-I$(top_builddir) \
	$(LZ4_CFLAGS) \
	$(FUSE_CFLAGS) \
	$(GNUTLS_CFLAGS) \
	-pthread
FUZZ_SRC = $(filter-out %.h,$(libsgblk_a_SOURCES))
FUZZ_TARGETS = \
	fuzz/fuzz-scsi-cdb \
	fuzz/fuzz-nbd-stream \
	fuzz/fuzz-nbd-transmission \
	fuzz/fuzz-cache-decode \
	fuzz/fuzz-cli
EXTRA_DIST += \
	fuzz/fuzz-scsi-cdb.c \
	fuzz/fuzz-nbd-stream.c \
	fuzz/fuzz-nbd-transmission.c \
	fuzz/fuzz-cache-decode.c \
	fuzz/fuzz-cli.c \
	fuzz/nbd-harness.h \
	fuzz/record-nbd-seeds.py \
	fuzz/corpus

fuzz: $(FUZZ_TARGETS)
fuzz/fuzz-%: $(top_srcdir)/fuzz/fuzz-%.c $(top_srcdir)/fuzz/nbd-harness.h $(addprefix $(top_srcdir)/,$(FUZZ_SRC))
	@mkdir -p fuzz
	$(CC) $(FUZZ_CFLAGS) -o $@ $< $(addprefix $(top_srcdir)/,$(FUZZ_SRC)) $(LZ4_LIBS) $(FUSE_LIBS) $(SYSTEMD_LIBS) $(GNUTLS_LIBS) $(RBD_LIBS)
CLEANFILES += $(FUZZ_TARGETS)

# Run every target for FUZZ_SECONDS from its seed corpus; stop at the
# first crash (its input is left as crash-* in the build directory).
# The last lines of each run give its executions and coverage (cov:, ft:).
FUZZ_SECONDS = 300
FUZZ_SHORT_SECONDS = 20
fuzz-long: fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  n=$$(basename $$t); mkdir -p fuzz-work/$$n; \
	  echo "== $$n, $(FUZZ_SECONDS) s"; \
	  seeds=; test -d $(top_srcdir)/fuzz/corpus/$$n && seeds=$(top_srcdir)/fuzz/corpus/$$n; \
	  ./$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    fuzz-work/$$n $$seeds 2>fuzz-work/$$n.log || { tail -n 40 fuzz-work/$$n.log; exit 1; }; \
	  grep -E '^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units' fuzz-work/$$n.log | tail -n 2; \
	done
fuzz-short:
	$(MAKE) $(AM_MAKEFLAGS) fuzz-long FUZZ_SECONDS=$(FUZZ_SHORT_SECONDS)
.PHONY: fuzz fuzz-long fuzz-short
