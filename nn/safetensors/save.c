/* save.c: the safetensors model writer (CONTRACT §4): writes a model the way
 * safetensors.torch.save_file does, atomically. Not for reading (load.c). */
#include "nn/safetensors/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/base/tc_err.h"
#include "nn/safetensors/safetensors_int.h"

static int tensor_name_cmp(const void *a, const void *b) {
  return strcmp(((const nn_tensor *)a)->name, ((const nn_tensor *)b)->name);
}

/* The JSON header into *hdr (malloc'd): compact, keys sorted, __metadata__ with every entry of m,
 * then the tensors s (sorted by name) with contiguous data_offsets in that order. */
static int header_build(const nn_model *m, const nn_tensor *s, int ns, const char *path, char **hdr,
                        char *err, size_t errlen) {
  int rc = 0;
  json_t *root = json_object(), *md = json_object();
  if (!root || !md)
    goto nomem;
  for (int i = 0; i < m->nmeta; i++) {
    json_t *v = json_string(m->meta_val[i]);
    if (!v || json_object_set_new(md, m->meta_key[i], v) != 0) {
      rc = nn_st_fail(err, errlen, path, TC_EINVAL, "metadata entry \"%.64s\" is not valid UTF-8",
                      m->meta_key[i]);
      goto out;
    }
  }
  if (json_object_set_new(root, "__metadata__", md) != 0) {
    md = NULL;
    goto nomem;
  }
  md = NULL;
  size_t off = 0;
  for (int i = 0; i < ns; i++) {
    size_t bytes = 4 * nn_tensor_numel(&s[i]);
    json_t *shape = s[i].ndim == 1
                        ? json_pack("[I]", (json_int_t)s[i].dim[0])
                        : json_pack("[II]", (json_int_t)s[i].dim[0], (json_int_t)s[i].dim[1]);
    json_t *t = json_pack("{s:s,s:o,s:[II]}", "dtype", "F32", "shape", shape, "data_offsets",
                          (json_int_t)off, (json_int_t)(off + bytes));
    if (!t || json_object_set_new(root, s[i].name, t) != 0)
      goto nomem;
    off += bytes;
  }
  *hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
  if (!*hdr)
    goto nomem;
  goto out;
nomem:
  rc = nn_st_fail(err, errlen, path, TC_ENOMEM, "out of memory building the header");
out:
  json_decref(md);
  json_decref(root);
  return rc;
}

/* Creates the temp file "PATH.tmp.XXXXXX" next to path (mode 0644): *tpath (malloc'd) and *f. */
static int temp_open(const char *path, char **tpath, FILE **f, char *err, size_t errlen) {
  size_t plen = strlen(path);
  char *t = malloc(plen + 16);
  if (!t)
    return nn_st_fail(err, errlen, path, TC_ENOMEM, "out of memory building the header");
  snprintf(t, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(t);
  if (fd < 0) {
    int rc = nn_st_fail(err, errlen, path, TC_EIO, "cannot create %s: %s", t, strerror(errno));
    free(t);
    return rc;
  }
  fchmod(fd, 0644);
  *f = fdopen(fd, "wb");
  if (!*f) {
    close(fd);
    int rc = nn_st_fail(err, errlen, path, TC_EIO, "cannot write %s: %s", t, strerror(errno));
    free(t);
    return rc;
  }
  *tpath = t;
  return 0;
}

/* Writes the file's bytes: the header length (8 bytes, little-endian), the header hdr padded with
 * spaces to a multiple of 8, then the tensors' floats (little-endian F32) in the order of s.
 * Returns 1 when every write succeeded. */
static int contents_write(FILE *f, const char *hdr, const nn_tensor *s, int ns) {
  size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
  unsigned char le[8];
  unsigned long long total = hl + pad;
  for (int i = 0; i < 8; i++)
    le[i] = (unsigned char)(total >> (8 * i));
  int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
  for (size_t i = 0; ok && i < pad; i++)
    ok = fputc(' ', f) != EOF;
  for (int i = 0; ok && i < ns; i++) {
    const float *src = s[i].data;
    size_t cnt = nn_tensor_numel(&s[i]);
    for (size_t j = 0; ok && j < cnt; j++) {
      uint32_t u;
      memcpy(&u, &src[j], 4);
      unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                            (unsigned char)(u >> 24)};
      ok = fwrite(b, 1, 4, f) == 4;
    }
  }
  return ok;
}

/* Writes the file's bytes straight into path, an existing file that is not a regular one (a
 * character device such as /dev/null, a FIFO): renaming a temp file over it would replace the
 * device node or the pipe with a regular file. 0, or TC_EIO with err. */
static int direct_write(const char *path, const char *hdr, const nn_tensor *s, int ns, char *err,
                        size_t errlen) {
  /* A FIFO's reader that leaves early is a failed write (EPIPE), not a silent death by SIGPIPE.
   * Opening a FIFO waits for its reader, as any writer of a FIFO does. */
  struct sigaction ign, old;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old);
  FILE *f = fopen(path, "wb");
  int ok = f != NULL, e = errno;
  if (f) {
    ok = contents_write(f, hdr, s, ns) && fflush(f) == 0;
    e = errno;
    if (fclose(f) != 0 && ok) {
      ok = 0;
      e = errno;
    }
  }
  sigaction(SIGPIPE, &old, NULL);
  if (!f)
    return nn_st_fail(err, errlen, path, TC_EIO, "cannot open for writing: %s", strerror(e));
  return ok ? 0 : nn_st_fail(err, errlen, path, TC_EIO, "cannot write: %s", strerror(e));
}

/* Writes m as a safetensors file the way safetensors.torch.save_file does: compact JSON header
 * (tensors sorted by name, contiguous offsets, __metadata__ with every entry) padded with spaces
 * to a multiple of 8, then the little-endian F32 data. Written to a temp file in the same
 * directory, flushed to disk, then renamed over path; a path that exists and is not a regular
 * file is written in place (a device, a FIFO) or refused (a directory). */
int nn_model_save(const nn_model *m, const char *path, char *err, size_t errlen) {
  if (!m || !m->params || !path)
    return nn_st_fail(err, errlen, path ? path : "?", TC_EINVAL, "no model");
  nn_tensor s[NN_TENSORS_MAX];
  int ns = nn_model_tensors(m, s);
  /* Nothing that the loader would refuse is written (a model that no command can load). */
  for (int j = 0; j < ns; j++) {
    size_t cnt = nn_tensor_numel(&s[j]);
    for (size_t i = 0; i < cnt; i++)
      if (!isfinite(s[j].data[i]))
        return nn_st_fail(err, errlen, path, TC_ERANGE,
                          "tensor %s value [%zu] is %s, expected a finite number (not written)",
                          s[j].name, i, isnan(s[j].data[i]) ? "nan" : "inf");
  }
  qsort(s, (size_t)ns, sizeof *s, tensor_name_cmp);
  char *hdr = NULL, *tpath = NULL;
  FILE *f = NULL;
  int rc = header_build(m, s, ns, path, &hdr, err, errlen);
  struct stat st;
  if (rc == 0 && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    rc = S_ISDIR(st.st_mode)
             ? nn_st_fail(err, errlen, path, TC_EIO, "is a directory, expected a file name")
             : direct_write(path, hdr, s, ns, err, errlen);
    free(hdr);
    return rc;
  }
  if (rc == 0)
    rc = temp_open(path, &tpath, &f, err, errlen);
  if (rc == 0) {
    int ok = contents_write(f, hdr, s, ns);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
      ok = 0;
    if (!ok || rename(tpath, path) != 0) {
      rc = nn_st_fail(err, errlen, path, TC_EIO, "cannot write: %s", strerror(errno));
      unlink(tpath);
    }
  }
  free(tpath);
  free(hdr);
  return rc;
}
