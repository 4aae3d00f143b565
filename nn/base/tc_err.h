/* tc_err.h: the one table of tickcast error codes, shared by every module.
 * Functions that can fail return 0 or a negative TC_E* code; tc_strerror() names it.
 * This header has no dependencies so that nn/ and store/ can both use it. */
#ifndef TC_ERR_H
#define TC_ERR_H

enum {
  TC_OK = 0,
  TC_ENOMEM = -1,  /* allocation failed */
  TC_EINVAL = -2,  /* bad argument or bad input */
  TC_EIO = -3,     /* read or write failed */
  TC_EFORMAT = -4, /* malformed file or message */
  TC_ESHAPE = -5,  /* tensor or state of the wrong shape */
  TC_ERANGE = -6,  /* value out of range */
  TC_ENOENT = -7,  /* no such file, key or entry */
  TC_EBUSY = -8,   /* resource busy, try again */
  TC_EKAFKA = -9,  /* Kafka client failure */
  TC_ESTORE = -10, /* state database failure */
  TC_EMODEL = -11, /* state belongs to another model */
  TC_EAGAIN = -12, /* would block; retry later */
  TC_EUSAGE = -13, /* bad command-line usage */
};

/* Returns a static, human-readable name for a TC_E* code (never NULL). */
const char *tc_strerror(int code);

#endif
