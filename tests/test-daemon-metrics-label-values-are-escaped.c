/* Export names as label values of the stats file: what the Prometheus
 * text format wants escaped is escaped (backslash, double quote,
 * newline), everything else of valid UTF-8 is kept as it is, and a byte
 * that is not UTF-8, on which a reader would reject the whole file,
 * becomes U+FFFD. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

/* The label value daemon_metrics_label_value writes for s. */
static char *
escaped (const char *s)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);

  assert_non_null (f);
  assert_int_equal (daemon_metrics_label_value (f, s), 0);
  assert_int_equal (fclose (f), 0);
  return buf;
}

static void
expect (const char *in, const char *want)
{
  char *got = escaped (in);
  assert_string_equal (got, want);
  free (got);
}

static void
plain_names_are_kept (void **state)
{
  expect ("", "");
  expect ("vol1", "vol1");
  expect ("disk-0_a.b:c/d e", "disk-0_a.b:c/d e");
  expect ("{export=1}", "{export=1}");       /* only inside quotes: nothing to do */
}

static void
backslash_quote_and_newline_are_escaped (void **state)
{
  expect ("a\\b", "a\\\\b");
  expect ("\"", "\\\"");
  expect ("two\nlines", "two\\nlines");
  expect ("\\\"\n", "\\\\\\\"\\n");
  expect ("tab\tstays", "tab\tstays");       /* the format escapes no more */
}

static void
utf8_is_kept_and_bad_bytes_become_u_fffd (void **state)
{
  expect ("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe");
  expect ("\xff", "\xef\xbf\xbd");
  expect ("a\x80z", "a\xef\xbf\xbdz");                    /* a lone continuation byte */
  expect ("\xc3", "\xef\xbf\xbd");                        /* cut short at the end */
  expect ("\xc3(", "\xef\xbf\xbd(");                      /* cut short by ASCII */
  expect ("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");        /* overlong '/' */
  expect ("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  /* a surrogate */
  expect ("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  /* > U+10FFFF */
  expect ("\xef\xbf\xbd", "\xef\xbf\xbd");                /* U+FFFD itself is fine */
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (plain_names_are_kept),
    cmocka_unit_test (backslash_quote_and_newline_are_escaped),
    cmocka_unit_test (utf8_is_kept_and_bad_bytes_become_u_fffd),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
