/* The store wrappers check the caller's side of the contract in debug
 * builds: a range past the end (counted over the whole iovec array), a
 * negative or NULL iovec array, an unknown flag, an empty extent query,
 * or readying a thread for a store that is not there stops the process;
 * calls at the edges of the contract pass, and readying a thread for a
 * store without thread_prepare does nothing. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"

/* A store that does nothing and reports one extent of everything asked. */
static int n_pread (struct store *s, const struct iovec *v, int n, uint64_t o) { return 0; }
static int n_pwrite (struct store *s, const struct iovec *v, int n, uint64_t o, unsigned f) { return 0; }
static int n_flush (struct store *s) { return 0; }
static int n_trim (struct store *s, uint64_t o, uint64_t l) { return 0; }
static int n_zero (struct store *s, uint64_t o, uint64_t l, unsigned f) { return 0; }
static int
n_extent (struct store *s, uint64_t o, uint64_t l, uint64_t *e, bool *a)
{
  *e = l;
  *a = true;
  return 0;
}
static void n_stats (struct store *s, struct store_stats *st) { }
static void n_close (struct store *s) { }

static const struct store_ops null_ops = {
  .name = "null", .pread = n_pread, .pwrite = n_pwrite, .flush = n_flush,
  .trim = n_trim, .zero = n_zero, .extent = n_extent, .stats = n_stats,
  .close = n_close,
};

static struct store null_store = { .ops = &null_ops, .size = 8192 };
static char buf[8192];

enum call {
  READ_PAST_END, READ_PAST_END_IN_SECOND_SEGMENT, WRITE_PAST_END,
  WRITE_UNKNOWN_FLAG, NEGATIVE_IOVCNT, NULL_IOV, NULL_BASE, OFFSET_PAST_END,
  TRIM_PAST_END, TRIM_LENGTH_WRAPS, ZERO_PAST_END, ZERO_UNKNOWN_FLAG,
  EXTENT_EMPTY, EXTENT_PAST_END, PREPARE_NULL, NCALLS
};

static void
make_call (enum call c)
{
  struct store *s = &null_store;
  struct iovec one = { buf, 4096 }, two[2] = { { buf, 4096 }, { buf, 4097 } };
  struct iovec nobase = { NULL, 512 };
  uint64_t len;
  bool alloc;

  switch (c) {
  case READ_PAST_END: store_pread (s, &one, 1, 4097); break;
  case READ_PAST_END_IN_SECOND_SEGMENT: store_pread (s, two, 2, 0); break;
  case WRITE_PAST_END: store_pwrite (s, &one, 1, 8192 - 512, 0); break;
  case WRITE_UNKNOWN_FLAG: store_pwrite (s, &one, 1, 0, 0x100); break;
  case NEGATIVE_IOVCNT: store_pread (s, &one, -1, 0); break;
  case NULL_IOV: store_pwrite (s, NULL, 1, 0, 0); break;
  case NULL_BASE: store_pread (s, &nobase, 1, 0); break;
  case OFFSET_PAST_END: store_pread (s, &one, 0, 8193); break;
  case TRIM_PAST_END: store_trim (s, 4096, 4097); break;
  case TRIM_LENGTH_WRAPS: store_trim (s, 4096, UINT64_MAX - 100); break;
  case ZERO_PAST_END: store_zero (s, 8192, 1, 0); break;
  case ZERO_UNKNOWN_FLAG: store_zero (s, 0, 512, 0x8); break;
  case EXTENT_EMPTY: store_extent (s, 0, 0, &len, &alloc); break;
  case EXTENT_PAST_END: store_extent (s, 512, 8192, &len, &alloc); break;
  case PREPARE_NULL: store_thread_prepare (NULL); break;
  default: break;
  }
}

static void
broken_calls_abort (void **state)
{
#ifdef NDEBUG
  skip ();
#endif
  for (int c = 0; c < NCALLS; c++) {
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
      int null = open ("/dev/null", O_WRONLY);
      if (null >= 0)
        dup2 (null, 2);                   /* the assertion's message */
      make_call ((enum call) c);
      _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (!WIFSIGNALED (status) || WTERMSIG (status) != SIGABRT)
      fail_msg ("call %d was not refused (status %#x)", c, status);
  }
}

static void
calls_at_the_edges_of_the_contract_pass (void **state)
{
  struct store *s = &null_store;
  struct iovec whole[2] = { { buf, 4096 }, { buf + 4096, 4096 } }, empty = { NULL, 0 };
  struct store_stats st;
  uint64_t len;
  bool alloc;

  assert_int_equal (store_pread (s, whole, 2, 0), 0);            /* all of it */
  assert_int_equal (store_pwrite (s, whole + 1, 1, 4096, STORE_FUA), 0);
  assert_int_equal (store_pread (s, &empty, 1, 8192), 0);        /* nothing, at the end */
  assert_int_equal (store_pwrite (s, NULL, 0, 0, 0), 0);
  assert_int_equal (store_trim (s, 0, 8192), 0);
  assert_int_equal (store_zero (s, 8191, 1, STORE_MAY_TRIM | STORE_FAST_ZERO), 0);
  assert_int_equal (store_extent (s, 8191, 1, &len, &alloc), 0);
  assert_int_equal (len, 1);
  assert_int_equal (store_flush (s), 0);
  assert_int_equal (store_thread_prepare (s), 0);     /* no op: nothing to do */
  store_get_stats (s, &st);
  store_close (s);
  store_close (NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (broken_calls_abort),
    cmocka_unit_test (calls_at_the_edges_of_the_contract_pass),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
