/* neurohand wire protocol v1 (PROTOCOL.md): messages, their packets, and a byte-at-a-time frame parser.
 * No heap: a parser owns fixed buffers sized by NH_MAX_PACKET. */
#ifndef NH_FRAME_H
#define NH_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "nh_cobs.h"

#ifndef NH_MAX_PACKET
#define NH_MAX_PACKET 8192u /* bytes before COBS; a build may lower it (a hand never receives SAMPLES) */
#endif
#define NH_MAX_FRAME (NH_COBS_MAX_ENCODED(NH_MAX_PACKET) + 1u) /* encoded, with the 0x00 delimiter */
#define NH_NAME_MAX 32u

enum nh_type { NH_HELLO = 1, NH_SET_POSITIONS = 2, NH_HEARTBEAT = 3, NH_ESTOP = 4, NH_STATUS = 5, NH_SAMPLES = 6 };
enum nh_role { NH_ROLE_HOST = 1, NH_ROLE_HAND = 2, NH_ROLE_INTERFACE = 3, NH_ROLE_GLOVE = 4 };
enum nh_caps { NH_CAP_POSITIONS = 1, NH_CAP_STATUS = 2, NH_CAP_SAMPLES = 4, NH_CAP_WATCHDOG = 8, NH_CAP_ESTOP = 16 };
enum nh_state { NH_RUNNING = 0, NH_SAFE = 1, NH_STOPPED = 2 };
enum nh_fault { NH_FAULT_WATCHDOG = 1, NH_FAULT_ESTOP = 2, NH_FAULT_OVERCURRENT = 4, NH_FAULT_LOW_BATTERY = 8,
                NH_FAULT_BAD_FRAMES = 16 };

typedef struct {
    uint8_t role;
    uint16_t caps;
    uint16_t n_channels;
    float fs_hz;
    float scale;
    char name[NH_NAME_MAX + 1]; /* utf-8, NUL-terminated */
} nh_hello;

typedef struct {
    uint16_t positions[5];
    uint16_t faults;
    uint16_t battery_mv;
    uint8_t state;
} nh_status;

typedef struct {
    uint32_t first_sample;
    uint16_t n_samples;
    uint16_t n_channels;
    const uint8_t *data; /* n_samples x n_channels int16 little-endian, inside the parser's buffer */
} nh_samples;

typedef struct {
    uint8_t type;
    uint16_t seq;
    union {
        nh_hello hello;
        uint16_t positions[5]; /* SET_POSITIONS: 0 open .. 1000 flexed */
        uint32_t uptime_ms;    /* HEARTBEAT */
        uint8_t reason;        /* ESTOP */
        nh_status status;
        nh_samples samples;
    } u;
} nh_msg;

/* Encode msg with sequence number seq into out (cap bytes): COBS packet and delimiter. Returns the frame's length,
 * or 0 when it does not fit or the message is invalid (positions above 1000, a name longer than 32 bytes). */
size_t nh_frame_encode(const nh_msg *msg, uint16_t seq, uint8_t *out, size_t cap);

/* Decode one packet (COBS already removed). Returns 0 and fills msg, or -1 when the packet is invalid (too short,
 * CRC, version, type, payload length). A SAMPLES message points into packet. */
int nh_packet_decode(const uint8_t *packet, size_t n, nh_msg *msg);

typedef struct {
    uint8_t frame[NH_MAX_FRAME];
    uint8_t packet[NH_MAX_PACKET];
    size_t len;
    int overflow;
    uint32_t frames_ok;
    uint32_t frames_bad;
} nh_parser;

void nh_parser_init(nh_parser *p);

/* Feed one received byte. Returns 1 when it completed a valid message (in msg), 0 otherwise; an invalid frame is
 * dropped and counted in frames_bad, and the parser is back in sync at the next 0x00. */
int nh_parser_feed(nh_parser *p, uint8_t byte, nh_msg *msg);

#endif
