/* cli/config: the exports of an INI configuration file (--config FILE).
 *
 * The file has one [NAME] section per export and an optional [sgblkd]
 * section; a key is a long option's name and means what the option
 * means.  Each export is served with three layers of options, a later
 * one overriding an earlier one key by key: the [sgblkd] section, the
 * command line, the export's own section.  Daemon-wide options (sockets,
 * threads, limits, --swap...) may only be in [sgblkd] or on the command
 * line, so that every export sees the same ones.
 *
 * Nothing is parsed twice: the merged options of an export are written
 * out as an argv, always in the order of the option table, and given to
 * cli_parse, which checks them exactly as it checks a command line.  That
 * argv, joined, is the export's "spec": two specs are equal exactly when
 * the export would be served the same way, which is how a reload tells an
 * unchanged export (it keeps its clients) from a changed one.
 *
 * Errors name the file and the line: a key's line for a problem with the
 * key, the section's [NAME] line for options that do not go together.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "internal.h"

/* The options an export section may set; every other option is
 * daemon-wide.  (export-name is the section's name.) */
static const char *const export_keys[] = {
  "size", "create", "read-only", "block-size", "direct", "mem-limit",
  "cache-size", "cache-mode", "cache-block", "recompress-idle", "spill",
  "fuse", "fuse-opt", "description", "store-timeout", "file", NULL
};

/* Options that cannot be in a file at all. */
static const char *const never_keys[] = {
  "config", "export-name", "help", "version", NULL
};

#define LAYERS 3                 /* [sgblkd], command line, [NAME] */

struct pair {
  const char *key;               /* a cli_long_opts name, or "file" */
  char *value;                   /* NULL for a flag that is set */
  unsigned line;                 /* 0: the command line */
};

struct section {
  char *name;
  unsigned line;
  struct pair *pairs;
  unsigned npairs;
};

static bool
in_list (const char *const *list, const char *k)
{
  for (; *list; list++)
    if (strcmp (*list, k) == 0)
      return true;
  return false;
}

/* The option table's entry for a key, or NULL.  "file" is FILE, the
 * positional argument, which has no entry. */
static const struct option *
find_opt (const char *key)
{
  for (const struct option *o = cli_long_opts; o->name; o++)
    if (strcmp (o->name, key) == 0)
      return o;
  return NULL;
}

static char *
trim (char *s)
{
  while (isspace ((unsigned char) *s))
    s++;
  size_t n = strlen (s);
  while (n > 0 && isspace ((unsigned char) s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* yes/no in a file, for a flag. */
static int
parse_bool (const char *v, bool *out)
{
  static const char *const yes[] = { "1", "yes", "true", "on", NULL };
  static const char *const no[] = { "0", "no", "false", "off", NULL };
  for (unsigned i = 0; yes[i]; i++) {
    if (strcasecmp (v, yes[i]) == 0) { *out = true; return 0; }
    if (strcasecmp (v, no[i]) == 0) { *out = false; return 0; }
  }
  return -1;
}

static int
add_pair (struct section *sec, const char *key, const char *value, unsigned line)
{
  struct pair *p = realloc (sec->pairs, (sec->npairs + 1) * sizeof *p);
  if (p == NULL)
    return -1;
  sec->pairs = p;
  p[sec->npairs] = (struct pair) { .key = key, .line = line, .value = NULL };
  if (value && (p[sec->npairs].value = strdup (value)) == NULL)
    return -1;
  sec->npairs++;
  return 0;
}

static void
free_section (struct section *sec)
{
  for (unsigned i = 0; i < sec->npairs; i++)
    free (sec->pairs[i].value);
  free (sec->pairs);
  free (sec->name);
  memset (sec, 0, sizeof *sec);
}

#define FERR(line, ...) do {                                    \
    errno_out = EINVAL;                                         \
    if (line)                                                   \
      fprintf (err, "sgblkd: %s:%u: ", path, (unsigned) (line)); \
    else                                                        \
      fprintf (err, "sgblkd: %s: ", path);                      \
    fprintf (err, __VA_ARGS__);                                 \
    fputc ('\n', err);                                          \
    goto out;                                                  \
  } while (0)

/* The command line's options as pairs (every one but --config). */
static int
argv_pairs (int argc, char **argv, struct section *cl)
{
  int c, idx;

  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, cli_short_opts, cli_long_opts, &idx)) != -1) {
    const struct option *o = NULL;
    if (c == '?')
      return -1;                /* cli_parse said so already */
    /* getopt leaves idx alone for a short option: find it by value. */
    for (const struct option *p = cli_long_opts; p->name; p++)
      if (p->val == c) { o = p; break; }
    if (o == NULL)
      return -1;
    if (strcmp (o->name, "config") == 0)
      continue;
    if (add_pair (cl, o->name, o->has_arg ? optarg : NULL, 0) == -1)
      return -1;
  }
  return 0;
}

/* The pairs of one key in the layer that decides it: every pair in the
 * last layer that has the key.  Only unix and verbose may repeat; for
 * the others the last pair counts. */
static void
decide (struct section *const layers[LAYERS], const char *key,
        unsigned *layer_out)
{
  *layer_out = LAYERS;
  for (unsigned l = LAYERS; l-- > 0; ) {
    if (layers[l] == NULL)
      continue;
    for (unsigned i = 0; i < layers[l]->npairs; i++)
      if (strcmp (layers[l]->pairs[i].key, key) == 0) {
        *layer_out = l;
        return;
      }
  }
}

struct argv_buf {
  char **v;
  int n;
};

static int
push (struct argv_buf *a, const char *s1, const char *s2)
{
  size_t n = strlen (s1) + (s2 ? strlen (s2) + 1 : 0) + 1;
  char **v = realloc (a->v, (size_t) (a->n + 2) * sizeof *v);
  if (v == NULL)
    return -1;
  a->v = v;
  if ((v[a->n] = malloc (n)) == NULL)
    return -1;
  if (s2)
    snprintf (v[a->n], n, "%s=%s", s1, s2);
  else
    snprintf (v[a->n], n, "%s", s1);
  v[++a->n] = NULL;
  return 0;
}

/* A flag set to no in a file: it drops what a lower layer said, as if
 * the flag were never given. */
static const char flag_no[] = "\x01no";

/* Write the merged options of the layers as an argv, in the table's
 * order: "sgblkd", --key=value..., [--export-name=NAME], [-- FILE].
 * daemon_only: only the daemon-wide options (no NAME, no FILE). */
static int
merge (struct section *const layers[LAYERS], const char *name, bool daemon_only,
       struct argv_buf *a)
{
  char opt[64];
  unsigned l;

  if (push (a, "sgblkd", NULL) == -1)
    return -1;
  for (const struct option *o = cli_long_opts; o->name; o++) {
    if (in_list (never_keys, o->name) ||
        (daemon_only && in_list (export_keys, o->name)))
      continue;
    decide (layers, o->name, &l);
    if (l == LAYERS)
      continue;
    snprintf (opt, sizeof opt, "--%s", o->name);
    const struct section *sec = layers[l];
    bool repeats = strcmp (o->name, "unix") == 0 || strcmp (o->name, "verbose") == 0;
    const struct pair *last = NULL;
    unsigned first = 0;
    /* A repeatable flag counts from its layer's last "no". */
    for (unsigned i = 0; i < sec->npairs; i++)
      if (strcmp (sec->pairs[i].key, o->name) == 0) {
        last = &sec->pairs[i];
        if (last->value && strcmp (last->value, flag_no) == 0)
          first = i + 1;
      }
    if (repeats) {
      for (unsigned i = first; i < sec->npairs; i++)
        if (strcmp (sec->pairs[i].key, o->name) == 0 &&
            push (a, opt, sec->pairs[i].value) == -1)
          return -1;
    }
    else if (last && !(last->value && strcmp (last->value, flag_no) == 0) &&
             push (a, opt, last->value) == -1)
      return -1;
  }
  if (daemon_only)
    return 0;
  if (name && (push (a, "--export-name", name) == -1))
    return -1;
  decide (layers, "file", &l);
  if (l < LAYERS) {
    const char *file = NULL;
    for (unsigned i = 0; i < layers[l]->npairs; i++)
      if (strcmp (layers[l]->pairs[i].key, "file") == 0)
        file = layers[l]->pairs[i].value;
    if (push (a, "--", NULL) == -1 || push (a, file, NULL) == -1)
      return -1;
  }
  return 0;
}

/* The argv as one string: the export's spec. */
static char *
join (const struct argv_buf *a)
{
  size_t n = 1;
  for (int i = 0; i < a->n; i++)
    n += strlen (a->v[i]) + 1;
  char *s = malloc (n), *p = s;
  if (s == NULL)
    return NULL;
  for (int i = 0; i < a->n; i++) {
    size_t l = strlen (a->v[i]);
    memcpy (p, a->v[i], l);
    p += l;
    *p++ = '\n';
  }
  *p = '\0';
  return s;
}

/* The line of the file's key that cli_parse refuses on its own with the
 * message msg, or 0. */
static unsigned
key_line (struct section *const layers[LAYERS], const char *msg)
{
  static const int order[] = { 2, 0 };   /* the section's keys, then [sgblkd]'s */

  for (unsigned k = 0; k < 2; k++) {
    const struct section *sec = layers[order[k]];
    if (sec == NULL)
      continue;
    for (unsigned i = 0; i < sec->npairs; i++) {
      const struct pair *p = &sec->pairs[i];
      if (strcmp (p->key, "file") == 0 || (p->value && strcmp (p->value, flag_no) == 0))
        continue;
      char opt[80], *one = NULL, *argv[3] = { (char *) "sgblkd", opt, NULL };
      struct cli_options o;
      size_t n = 0;
      snprintf (opt, sizeof opt, "--%s%s", p->key, p->value ? "=" : "");
      if (p->value) {
        size_t l = strlen (opt) + strlen (p->value) + 1;
        if ((argv[1] = malloc (l)) == NULL)
          return 0;
        snprintf (argv[1], l, "%s%s", opt, p->value);
      }
      FILE *m = open_memstream (&one, &n);
      bool same = false;
      if (m) {
        same = cli_parse (2, argv, &o, m) == -1;
        fclose (m);
        same = same && one && strcmp (one, msg) == 0;
      }
      free (one);
      if (argv[1] != opt)
        free (argv[1]);
      if (same)
        return p->line;
    }
  }
  return 0;
}

void
cli_export_free (struct cli_export *e)
{
  if (e == NULL)
    return;
  for (int i = 0; i < e->argc; i++)
    free (e->argv_own[i]);
  free (e->argv_own);
  free (e->argv);
  free (e->name);
  free (e->spec);
  free (e);
}

void
cli_config_free (struct cli_config *c)
{
  for (unsigned i = 0; i < c->n; i++)
    cli_export_free (c->exports[i]);
  free (c->exports);
  cli_export_free (c->daemon);
  free (c->daemon_spec);
  memset (c, 0, sizeof *c);
}

/* Build, check and keep one export from its layers.  -1 after one line
 * on err. */
static struct cli_export *
make_export (const char *path, struct section *const layers[LAYERS],
             const struct section *sec, bool daemon_only, FILE *err)
{
  struct argv_buf a = { NULL, 0 };
  struct cli_export *e = calloc (1, sizeof *e);
  char *msg = NULL;
  size_t msglen = 0;

  if (e == NULL || merge (layers, daemon_only ? NULL : sec->name, daemon_only, &a) == -1)
    goto oom;
  e->argc = a.n;
  e->argv_own = a.v;
  a.v = NULL;
  /* cli_parse may permute its argv: give it a copy of the pointers. */
  e->argv = malloc ((size_t) (e->argc + 1) * sizeof *e->argv);
  if (e->argv == NULL)
    goto oom;
  memcpy (e->argv, e->argv_own, (size_t) (e->argc + 1) * sizeof *e->argv);
  struct argv_buf own = { e->argv_own, e->argc };
  if ((e->spec = join (&own)) == NULL || (e->name = strdup (sec->name)) == NULL)
    goto oom;
  e->line = sec->line;
  FILE *m = open_memstream (&msg, &msglen);
  if (m == NULL)
    goto oom;
  int r = cli_parse (e->argc, e->argv, &e->opt, m);
  fclose (m);
  if (r == -1) {
    /* "sgblkd: why" becomes "sgblkd: FILE:LINE: [export 'NAME': ]why",
     * at the line of the key that alone is refused for the same reason,
     * else (options that do not go together) at the section's. */
    const char *why = msg && strncmp (msg, "sgblkd: ", 8) == 0 ? msg + 8 : msg;
    unsigned line = key_line (layers, msg ? msg : "");
    if (line == 0)
      line = sec->line;
    if (daemon_only && line == 0)
      fprintf (err, "sgblkd: %s: %s", path, why ? why : "invalid\n");
    else if (daemon_only)
      fprintf (err, "sgblkd: %s:%u: %s", path, line, why ? why : "invalid\n");
    else
      fprintf (err, "sgblkd: %s:%u: export '%s': %s", path, line, sec->name,
               why ? why : "invalid\n");
    free (msg);
    cli_export_free (e);
    return NULL;
  }
  free (msg);
  return e;
 oom:
  fprintf (err, "sgblkd: %s: out of memory\n", path);
  if (a.v) {
    for (int i = 0; i < a.n; i++)
      free (a.v[i]);
    free (a.v);
  }
  cli_export_free (e);
  return NULL;
}

/* Two exports that would fight over one thing. */
static bool
same_path (const char *a, const char *b)
{
  struct stat sa, sb;
  if (a == NULL || b == NULL)
    return false;
  if (strcmp (a, b) == 0)
    return true;
  return stat (a, &sa) == 0 && stat (b, &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int
cli_config_load (const char *path, int argc, char **argv,
                 struct cli_config *c, FILE *err)
{
  struct section global = { 0 }, cl = { 0 };
  struct section *secs = NULL, *cur = NULL;
  unsigned nsecs = 0, lineno = 0;
  bool have_global = false;
  int errno_out = EINVAL;
  char *line = NULL;
  size_t cap = 0;
  FILE *f = NULL;

  memset (c, 0, sizeof *c);
  if (argv_pairs (argc, argv, &cl) == -1) {
    fprintf (err, "sgblkd: cannot read the command line\n");
    goto out;
  }
  if ((f = fopen (path, "re")) == NULL) {
    int e = errno;
    fprintf (err, "sgblkd: %s: cannot read the configuration file: %s\n", path, strerror (e));
    errno_out = e;
    goto out;
  }

  while (getline (&line, &cap, f) != -1) {
    char *s = trim (line);
    lineno++;
    if (*s == '\0' || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *end = strrchr (s, ']');
      if (end == NULL || end[1] != '\0')
        FERR (lineno, "a section header is [NAME]");
      *end = '\0';
      const char *name = s + 1;
      if (strcmp (name, "sgblkd") == 0) {
        if (have_global)
          FERR (lineno, "[sgblkd] given twice");
        have_global = true;
        global.line = lineno;
        cur = &global;
        continue;
      }
      if (strlen (name) > 4096)
        FERR (lineno, "export name longer than 4096 bytes");
      for (unsigned i = 0; i < nsecs; i++)
        if (strcmp (secs[i].name, name) == 0)
          FERR (lineno, "export '%s' given twice (first at line %u)", name, secs[i].line);
      struct section *n = realloc (secs, (nsecs + 1) * sizeof *n);
      if (n == NULL)
        FERR (lineno, "out of memory");
      secs = n;
      secs[nsecs] = (struct section) { .line = lineno };
      if ((secs[nsecs].name = strdup (name)) == NULL)
        FERR (lineno, "out of memory");
      cur = &secs[nsecs++];
      continue;
    }
    char *eq = strchr (s, '=');
    char *key = s, *value = NULL;
    if (eq) {
      *eq = '\0';
      key = trim (s);
      value = trim (eq + 1);
      size_t vl = strlen (value);
      if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
        value[vl - 1] = '\0';
        value++;
      }
    }
    if (cur == NULL)
      FERR (lineno, "'%s' outside a section: put daemon-wide options under [sgblkd]", key);
    const struct option *o = find_opt (key);
    bool is_file = strcmp (key, "file") == 0;
    if ((o == NULL && !is_file) || in_list (never_keys, key)) {
      if (strcmp (key, "export-name") == 0)
        FERR (lineno, "'export-name' cannot be set: the section's [NAME] is the export's name");
      FERR (lineno, "unknown key '%s' (keys are sgblkd's long option names)", key);
    }
    if (cur != &global && !in_list (export_keys, key))
      FERR (lineno, "'%s' applies to the whole daemon: put it under [sgblkd] or on the command line",
            key);
    const char *k = is_file ? "file" : o->name;
    if (is_file || o->has_arg) {
      if (value == NULL)
        FERR (lineno, "'%s' needs a value ('%s = ...')", key, key);
      if (add_pair (cur, k, value, lineno) == -1)
        FERR (lineno, "out of memory");
    }
    else {
      bool on = true;
      if (value && parse_bool (value, &on) == -1)
        FERR (lineno, "'%s' is yes or no, not '%s'", key, value);
      /* "no" drops what a lower layer said: as if it were never given. */
      if (on ? add_pair (cur, k, NULL, lineno) == -1
             : add_pair (cur, k, flag_no, lineno) == -1)
        FERR (lineno, "out of memory");
    }
  }
  if (ferror (f)) {
    int e = errno;
    fprintf (err, "sgblkd: %s: cannot read the configuration file: %s\n", path, strerror (e));
    errno_out = e;
    goto out;
  }
  if (nsecs == 0)
    FERR (0, "no exports: give each one a [NAME] section");

  /* The daemon-wide options, which are every export's (sections
   * cannot set them), parsed on their own. */
  {
    struct section *layers[LAYERS] = { &global, &cl, NULL };
    struct section dsec = { .name = (char *) "", .line = global.line };
    if ((c->daemon = make_export (path, layers, &dsec, true, err)) == NULL)
      goto out;
    if ((c->daemon_spec = strdup (c->daemon->spec)) == NULL)
      FERR (0, "out of memory");
  }
  c->exports = calloc (nsecs, sizeof *c->exports);
  if (c->exports == NULL)
    FERR (0, "out of memory");
  for (unsigned i = 0; i < nsecs; i++) {
    struct section *layers[LAYERS] = { &global, &cl, &secs[i] };
    struct cli_export *e = make_export (path, layers, &secs[i], false, err);
    if (e == NULL)
      goto out;
    c->exports[c->n++] = e;
  }
  for (unsigned i = 0; i < c->n; i++)
    for (unsigned j = 0; j < i; j++) {
      const struct cli_options *a = &c->exports[j]->opt, *b = &c->exports[i]->opt;
      unsigned la = c->exports[j]->line, lb = c->exports[i]->line;
      if (same_path (a->file, b->file))
        FERR (lb, "export '%s' serves %s, as export '%s' (line %u) does: one file, one cache",
              c->exports[i]->name, b->file, c->exports[j]->name, la);
      if (same_path (a->fuse_mount, b->fuse_mount))
        FERR (lb, "export '%s' mounts on %s, as export '%s' (line %u) does: one mount point each",
              c->exports[i]->name, b->fuse_mount, c->exports[j]->name, la);
      if (same_path (a->spill, b->spill))
        FERR (lb, "export '%s' spills to %s, as export '%s' (line %u) does",
              c->exports[i]->name, b->spill, c->exports[j]->name, la);
    }
  errno_out = 0;

 out:
  free (line);
  if (f)
    fclose (f);
  free_section (&global);
  free_section (&cl);
  for (unsigned i = 0; i < nsecs; i++)
    free_section (&secs[i]);
  free (secs);
  if (errno_out == 0)
    return 0;
  cli_config_free (c);
  errno = errno_out;
  return -1;
}
