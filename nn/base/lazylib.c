/* lazylib.c: loading a library on its first call (see lazylib.h). */
#include "nn/base/lazylib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"

/* One load at a time, of any library: loads are rare, and a second thread that calls in while
 * the first loads must wait for it, not load again. */
static pthread_mutex_t loading = PTHREAD_MUTEX_INITIALIZER;

static void load(lazylib *L) {
  /* RTLD_GLOBAL, as a linked library's symbols are: what the library loads in turn (a
   * librdkafka plugin that does not name librdkafka itself) still finds them. */
  void *lib = dlopen(L->soname, RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    snprintf(L->err, sizeof L->err, "cannot load %s (install Debian's %s): %s", L->soname,
             L->debian, dlerror());
    return;
  }
  /* Each address as it is found: a stub that sees one may jump there (the library is loaded).
   * Only a complete table counts as loaded; when a name is missing, lazylib_bind ends the
   * process. */
  const char *name = L->names;
  for (int i = 0; i < L->count; i++, name += strlen(name) + 1) {
    void *fn = dlsym(lib, name);
    if (!fn) {
      snprintf(L->err, sizeof L->err, "%s has no %s (a newer version is needed): %s", L->soname,
               name, dlerror());
      return;
    }
    __atomic_store_n(&L->fn[i], fn, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&L->loaded, 1, __ATOMIC_RELEASE);
}

int lazylib_load(lazylib *L, char *err, size_t errlen) {
  if (!L)
    return 0;
  if (!__atomic_load_n(&L->loaded, __ATOMIC_ACQUIRE)) {
    pthread_mutex_lock(&loading);
    if (!L->tried) {
      L->tried = 1;
      load(L);
    }
    pthread_mutex_unlock(&loading);
  }
  if (__atomic_load_n(&L->loaded, __ATOMIC_ACQUIRE))
    return 0;
  if (errlen)
    snprintf(err, errlen, "%s", L->err);
  return TC_EIO;
}

void *lazylib_bind(lazylib *L, int i) {
  if (lazylib_load(L, NULL, 0) != 0) {
    fprintf(stderr, "tickcast: %s\n", L->err);
    exit(1);
  }
  return __atomic_load_n(&L->fn[i], __ATOMIC_ACQUIRE);
}
