/* Consistent Overhead Byte Stuffing (Cheshire and Baker 1999): the framing of PROTOCOL.md, without the delimiter. */
#ifndef NH_COBS_H
#define NH_COBS_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes nh_cobs_encode writes for n input bytes. */
#define NH_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/* Encode n bytes into out (room for NH_COBS_MAX_ENCODED(n)); returns the encoded length. No zero byte is written. */
size_t nh_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/* Decode n encoded bytes (no delimiter) into out (cap bytes); returns the decoded length, or -1 when the input is
 * not valid COBS (a zero byte, a code running past the end) or does not fit. */
long nh_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

#endif
