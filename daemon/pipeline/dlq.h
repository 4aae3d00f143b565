/* dlq.h: the dead-letter record for a rejected input message: one JSON object with the reason, the
 * one-line error, where it came from, the key and the original payload. Every part is cut to a
 * bound, so a dead letter always fits a topic whatever the input was: at most DLQ_RECORD_MAX bytes
 * (with the default cut), plus a message key of at most DLQ_KEY_MAX bytes. Cold path: uses
 * jansson and allocates. Not for sending. */
#ifndef DAEMON_DLQ_H
#define DAEMON_DLQ_H

#include <stddef.h>
#include <stdint.h>

#define DLQ_PAYLOAD_MAX 4096 /* payload bytes kept in a dead letter */
#define DLQ_KEY_MAX 256      /* key bytes kept, in the record and as the dead letter's own key */
#define DLQ_TEXT_MAX 256     /* bytes kept of the error text and of src */
/* The longest record with cut <= DLQ_PAYLOAD_MAX: JSON escapes a byte into at most 6 ("\u0001"),
 * so payload 6 x 4096, key 6 x 256, error and src 6 x 256 each, and 512 for names and numbers. */
#define DLQ_RECORD_MAX (6 * (DLQ_PAYLOAD_MAX + DLQ_KEY_MAX + 2 * DLQ_TEXT_MAX) + 512)

/* How many of the key's keylen bytes a dead letter keeps (at most DLQ_KEY_MAX, never inside a
 * UTF-8 character): the record's "key" holds them, and the dead letter is produced with them as
 * its message key. */
size_t dlq_key_kept(const void *key, size_t keylen);

/* Builds {"reason":..,"error":..,"src":"ticks/3/17","key":..|null,"time":<ms>,"len":<bytes>,
 * "payload":..,"payload_encoding":"text"|"base64","truncated":bool} as a malloc'd one-line string
 * (caller frees) with its length in *outlen, or NULL on ENOMEM. The payload, cut to at most
 * `cut` bytes (at a UTF-8 character boundary), is kept as text when it is valid UTF-8 and as
 * base64 otherwise; the key likewise (base64 with "key_encoding":"base64" when not UTF-8), cut to
 * dlq_key_kept bytes, and then "key_truncated":true and "key_len":<bytes> follow it; error and src
 * are cut to DLQ_TEXT_MAX bytes. */
char *dlq_encode(const char *reason, const char *error, const char *src, const void *key,
                 size_t keylen, int64_t time_ms, const void *payload, size_t len, size_t cut,
                 size_t *outlen);

#endif
