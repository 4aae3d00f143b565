/* sanitize.h: UNDER_ASAN is 1 in a build with AddressSanitizer (GCC says so with
 * __SANITIZE_ADDRESS__, clang with __has_feature), else 0. Its allocator replaces glibc's, so
 * glibc's malloc controls (malloc_trim, mallopt, mallinfo2) neither act nor report there.
 * Header-only. */
#ifndef NN_BASE_SANITIZE_H
#define NN_BASE_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#endif
