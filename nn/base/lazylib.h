/* lazylib.h: a shared library that the program loads on its first call into it, not at start.
 *
 * Loading a library costs every command that starts, whether it uses the library or not: the
 * dynamic loader maps it and its dependencies and relocates them. librdkafka with its TLS chain
 * (libssl, libcrypto, libsasl2, the compressors) took about 6 ms of every start on the VM of
 * docs/BENCHMARKS.md, where `tickcast replay` of a file needs none of it.
 *
 * nn/base/lazystubs.sh writes, for the library's functions that the program's objects call, one
 * stub each under the function's own name: it jumps through a table of addresses, and while an
 * entry is still empty it calls lazylib_bind, which loads the library (once, for all threads),
 * fills the whole table and returns the address. The stub then jumps there with the caller's
 * registers as they were, so any signature works, variadic ones too. Only the tickcast program
 * links the stubs; the tests and benchmarks link the library as usual and never see this. */
#ifndef NN_BASE_LAZYLIB_H
#define NN_BASE_LAZYLIB_H

#include <stddef.h>

typedef struct lazylib {
  const char *soname; /* what dlopen loads, e.g. "librdkafka.so.1" */
  const char *debian; /* the Debian package that has it, for the error */
  const char *names;  /* the functions' names, each ended by a NUL, in table order */
  int count;          /* entries of fn */
  void **fn;          /* the table the stubs jump through; empty until loaded */
  int tried;          /* the load was tried (under lazylib.c's lock) */
  int loaded;         /* 1: fn is filled (atomic) */
  char err[320];      /* why it could not be loaded */
} lazylib;

/* Loads L (the first call; later ones return what it did): 0, or TC_EIO with why in err. L may
 * be NULL, as the address of a weak reference to a library that is linked, not stubbed: 0. */
int lazylib_load(lazylib *L, char *err, size_t errlen);

/* For the stubs: the address of function i of L, loading L first. Where L cannot be loaded it
 * prints why ("tickcast: cannot load librdkafka.so.1 (...)") and ends the process with status 1:
 * the caller has no way to be told. */
void *lazylib_bind(lazylib *L, int i);

#endif
