/* CRC-16/CCITT-FALSE as PROTOCOL.md specifies: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR. */
#ifndef NH_CRC16_H
#define NH_CRC16_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of n bytes (check: "123456789" gives 0x29B1). */
uint16_t nh_crc16(const uint8_t *data, size_t n);

#endif
