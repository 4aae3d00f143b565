/* dlq.h: the dead-letter record for a rejected input message: one JSON object with the reason, the
 * one-line error, where it came from and the original payload (escaped, cut to a bounded size so a
 * huge bad message still fits the topic). Cold path: uses jansson and allocates. Not for sending.
 */
#ifndef DAEMON_DLQ_H
#define DAEMON_DLQ_H

#include <stddef.h>
#include <stdint.h>

#define DLQ_PAYLOAD_MAX 4096 /* payload bytes kept in a dead letter */

/* Builds {"reason":..,"error":..,"src":"ticks/3/17","key":..|null,"time":<ms>,"len":<bytes>,
 * "payload":..,"payload_encoding":"text"|"base64","truncated":bool} as a malloc'd one-line string
 * (caller frees) with its length in *outlen, or NULL on ENOMEM. The payload, cut to at most
 * `cut` bytes (at a UTF-8 character boundary), is kept as text when it is valid UTF-8 and as
 * base64 otherwise; the key likewise (base64 with "key_encoding":"base64" when not UTF-8). */
char *dlq_encode(const char *reason, const char *error, const char *src, const void *key,
                 size_t keylen, int64_t time_ms, const void *payload, size_t len, size_t cut,
                 size_t *outlen);

#endif
