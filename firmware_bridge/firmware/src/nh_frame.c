#include "nh_frame.h"

#include <string.h>

#include "nh_crc16.h"

#define HEADER 4u
#define HELLO_FIXED 13u

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) | ((uint32_t)get16(p + 2) << 16); }

static void putf(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    put32(p, v);
}

static float getf(const uint8_t *p)
{
    uint32_t v = get32(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/* The payload of msg into p (room for NH_MAX_PACKET - 6); returns its length, or -1. */
static long payload_of(const nh_msg *m, uint8_t *p)
{
    size_t k;
    switch (m->type) {
    case NH_HELLO: {
        size_t n = strlen(m->u.hello.name);
        if (n > NH_NAME_MAX) {
            return -1;
        }
        p[0] = m->u.hello.role;
        put16(p + 1, m->u.hello.caps);
        put16(p + 3, m->u.hello.n_channels);
        putf(p + 5, m->u.hello.fs_hz);
        putf(p + 9, m->u.hello.scale);
        memcpy(p + HELLO_FIXED, m->u.hello.name, n);
        return (long)(HELLO_FIXED + n);
    }
    case NH_SET_POSITIONS:
        for (k = 0; k < 5; k++) {
            if (m->u.positions[k] > 1000u) {
                return -1;
            }
            put16(p + 2 * k, m->u.positions[k]);
        }
        return 10;
    case NH_HEARTBEAT:
        put32(p, m->u.uptime_ms);
        return 4;
    case NH_ESTOP:
        p[0] = m->u.reason;
        return 1;
    case NH_STATUS:
        for (k = 0; k < 5; k++) {
            put16(p + 2 * k, m->u.status.positions[k]);
        }
        put16(p + 10, m->u.status.faults);
        put16(p + 12, m->u.status.battery_mv);
        p[14] = m->u.status.state;
        return 15;
    case NH_SAMPLES: {
        size_t bytes = 2u * (size_t)m->u.samples.n_samples * m->u.samples.n_channels;
        if (bytes == 0 || 8u + bytes > NH_MAX_PACKET - 6u) {
            return -1;
        }
        put32(p, m->u.samples.first_sample);
        put16(p + 4, m->u.samples.n_samples);
        put16(p + 6, m->u.samples.n_channels);
        memcpy(p + 8, m->u.samples.data, bytes);
        return (long)(8u + bytes);
    }
    default:
        return -1;
    }
}

size_t nh_frame_encode(const nh_msg *msg, uint16_t seq, uint8_t *out, size_t cap)
{
    static uint8_t packet[NH_MAX_PACKET]; /* no heap, no large stack frame on a small MCU */
    long n = payload_of(msg, packet + HEADER);
    size_t total, enc;
    uint16_t crc;
    if (n < 0) {
        return 0;
    }
    packet[0] = 1;
    packet[1] = msg->type;
    put16(packet + 2, seq);
    total = HEADER + (size_t)n;
    crc = nh_crc16(packet, total);
    put16(packet + total, crc);
    total += 2;
    if (NH_COBS_MAX_ENCODED(total) + 1u > cap) {
        return 0;
    }
    enc = nh_cobs_encode(packet, total, out);
    out[enc] = 0;
    return enc + 1;
}

int nh_packet_decode(const uint8_t *pk, size_t n, nh_msg *m)
{
    const uint8_t *p = pk + HEADER;
    size_t len, k;
    if (n < 6 || pk[0] != 1 || get16(pk + n - 2) != nh_crc16(pk, n - 2)) {
        return -1;
    }
    len = n - 6;
    memset(m, 0, sizeof *m);
    m->type = pk[1];
    m->seq = get16(pk + 2);
    switch (m->type) {
    case NH_HELLO:
        if (len < HELLO_FIXED || len > HELLO_FIXED + NH_NAME_MAX) {
            return -1;
        }
        m->u.hello.role = p[0];
        m->u.hello.caps = get16(p + 1);
        m->u.hello.n_channels = get16(p + 3);
        m->u.hello.fs_hz = getf(p + 5);
        m->u.hello.scale = getf(p + 9);
        memcpy(m->u.hello.name, p + HELLO_FIXED, len - HELLO_FIXED);
        m->u.hello.name[len - HELLO_FIXED] = '\0';
        return 0;
    case NH_SET_POSITIONS:
        if (len != 10) {
            return -1;
        }
        for (k = 0; k < 5; k++) {
            m->u.positions[k] = get16(p + 2 * k);
            if (m->u.positions[k] > 1000u) {
                return -1;
            }
        }
        return 0;
    case NH_HEARTBEAT:
        if (len != 4) {
            return -1;
        }
        m->u.uptime_ms = get32(p);
        return 0;
    case NH_ESTOP:
        if (len != 1) {
            return -1;
        }
        m->u.reason = p[0];
        return 0;
    case NH_STATUS:
        if (len != 15) {
            return -1;
        }
        for (k = 0; k < 5; k++) {
            m->u.status.positions[k] = get16(p + 2 * k);
        }
        m->u.status.faults = get16(p + 10);
        m->u.status.battery_mv = get16(p + 12);
        m->u.status.state = p[14];
        return 0;
    case NH_SAMPLES:
        if (len < 8) {
            return -1;
        }
        m->u.samples.first_sample = get32(p);
        m->u.samples.n_samples = get16(p + 4);
        m->u.samples.n_channels = get16(p + 6);
        if (m->u.samples.n_samples == 0 || m->u.samples.n_channels == 0 ||
            len != 8u + 2u * (size_t)m->u.samples.n_samples * m->u.samples.n_channels) {
            return -1;
        }
        m->u.samples.data = p + 8;
        return 0;
    default:
        return -1;
    }
}

void nh_parser_init(nh_parser *p)
{
    p->len = 0;
    p->overflow = 0;
    p->frames_ok = 0;
    p->frames_bad = 0;
}

int nh_parser_feed(nh_parser *p, uint8_t byte, nh_msg *msg)
{
    long n;
    if (byte != 0) {
        if (p->len < sizeof p->frame) {
            p->frame[p->len++] = byte;
        } else {
            p->overflow = 1; /* too long for any packet: dropped at its delimiter */
        }
        return 0;
    }
    if (p->len == 0 && !p->overflow) {
        return 0; /* extra delimiters between frames are allowed */
    }
    n = p->overflow ? -1 : nh_cobs_decode(p->frame, p->len, p->packet, sizeof p->packet);
    p->len = 0;
    p->overflow = 0;
    if (n < 0 || nh_packet_decode(p->packet, (size_t)n, msg) != 0) {
        p->frames_bad++;
        return 0;
    }
    p->frames_ok++;
    return 1;
}
