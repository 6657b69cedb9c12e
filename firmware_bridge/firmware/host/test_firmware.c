/* Host tests of the firmware: PROTOCOL.md's vectors both ways, COBS and CRC, and the hand's behaviour on a fake
 * clock through a HAL that records what the firmware sent. Exit status 0 when everything passes. Also built for a
 * Cortex-M and run under qemu-system-arm with semihosting (printf and the exit status reach the host). */
#include <stdio.h>
#include <string.h>

#include "nh_cobs.h"
#include "nh_crc16.h"
#include "nh_frame.h"
#include "nh_hal.h"
#include "nh_hand.h"
#include "vectors.h"

static int failures, checks;
#define CHECK(cond, ...)                                                                                              \
    do {                                                                                                              \
        checks++;                                                                                                     \
        if (!(cond)) {                                                                                                \
            failures++;                                                                                               \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                               \
            printf(__VA_ARGS__);                                                                                      \
            printf("\n");                                                                                             \
        }                                                                                                             \
    } while (0)

/* ---- a HAL on buffers: bytes to read, bytes written, the last motor targets */
static uint8_t rx[4096];
static size_t rx_len, rx_pos;
static uint8_t tx[4096];
static size_t tx_len;
static uint16_t motors[5];

int nh_hal_read_byte(void) { return rx_pos < rx_len ? rx[rx_pos++] : -1; }
void nh_hal_write_byte(uint8_t b) { if (tx_len < sizeof tx) tx[tx_len++] = b; }
void nh_hal_set_motor_targets(const uint16_t t[5]) { memcpy(motors, t, sizeof motors); }

static void host_sends(const nh_msg *m)
{
    static uint16_t seq;
    rx_len += nh_frame_encode(m, seq++, rx + rx_len, sizeof rx - rx_len);
}

/* The messages the hand sent since the last call. */
static int hand_sent(nh_msg *out, int max)
{
    static nh_parser p;
    static int ready;
    size_t i;
    int n = 0;
    if (!ready) {
        nh_parser_init(&p);
        ready = 1;
    }
    for (i = 0; i < tx_len; i++) {
        if (nh_parser_feed(&p, tx[i], &out[n]) && n < max - 1) {
            n++;
        }
    }
    tx_len = 0;
    return n;
}

static int same_msg(const nh_msg *a, const nh_msg *b)
{
    int k;
    if (a->type != b->type || a->seq != b->seq) {
        return 0;
    }
    switch (a->type) {
    case NH_HELLO:
        return a->u.hello.role == b->u.hello.role && a->u.hello.caps == b->u.hello.caps &&
               a->u.hello.n_channels == b->u.hello.n_channels && a->u.hello.fs_hz == b->u.hello.fs_hz &&
               a->u.hello.scale == b->u.hello.scale && strcmp(a->u.hello.name, b->u.hello.name) == 0;
    case NH_SET_POSITIONS:
        return memcmp(a->u.positions, b->u.positions, sizeof a->u.positions) == 0;
    case NH_HEARTBEAT:
        return a->u.uptime_ms == b->u.uptime_ms;
    case NH_ESTOP:
        return a->u.reason == b->u.reason;
    case NH_STATUS:
        for (k = 0; k < 5; k++) {
            if (a->u.status.positions[k] != b->u.status.positions[k]) {
                return 0;
            }
        }
        return a->u.status.faults == b->u.status.faults && a->u.status.battery_mv == b->u.status.battery_mv &&
               a->u.status.state == b->u.status.state;
    case NH_SAMPLES:
        return a->u.samples.first_sample == b->u.samples.first_sample &&
               a->u.samples.n_samples == b->u.samples.n_samples && a->u.samples.n_channels == b->u.samples.n_channels &&
               memcmp(a->u.samples.data, b->u.samples.data, 2u * a->u.samples.n_samples * a->u.samples.n_channels) == 0;
    default:
        return 0;
    }
}

static void test_vectors(void)
{
    static nh_parser p;
    static uint8_t out[NH_MAX_FRAME];
    int v;
    size_t i;
    for (v = 0; v < NH_N_VECTORS; v++) {
        const struct nh_vector *t = &NH_VECTORS[v];
        nh_msg m;
        int got = 0;
        size_t n;
        nh_parser_init(&p);
        for (i = 0; i < t->len; i++) {
            got += nh_parser_feed(&p, t->frame[i], &m);
        }
        CHECK(got == 1 && same_msg(&m, &t->msg), "vector '%s' does not decode to its values", t->name);
        n = nh_frame_encode(&t->msg, t->msg.seq, out, sizeof out);
        CHECK(n == t->len && memcmp(out, t->frame, n) == 0, "vector '%s' does not encode to its bytes", t->name);
    }
}

static void test_crc_and_cobs(void)
{
    static uint8_t in[600], enc[700], dec[700];
    size_t n, i, k;
    long d;
    uint32_t x = 12345u;
    CHECK(nh_crc16((const uint8_t *)"123456789", 9) == 0x29B1u, "CRC check value");
    memset(in, 1, 254); /* a full block ending the input: no final code byte, as the cobs package */
    n = nh_cobs_encode(in, 254, enc);
    CHECK(n == 255 && enc[0] == 0xFF, "254 non-zero bytes encode to 255 bytes, got %u", (unsigned)n);
    in[254] = 0;
    n = nh_cobs_encode(in, 255, enc);
    CHECK(n == 257 && enc[255] == 1 && enc[256] == 1, "254 non-zero bytes and a zero encode to 257 bytes");
    for (k = 0; k < 200; k++) { /* round trip of random buffers with runs of zeros and non-zeros */
        size_t len = k * 3 % 600;
        for (i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (uint8_t)((x >> 16) % 4 == 0 ? 0 : (x >> 8));
        }
        n = nh_cobs_encode(in, len, enc);
        CHECK(memchr(enc, 0, n) == NULL, "no zero byte in an encoding");
        d = nh_cobs_decode(enc, n, dec, sizeof dec);
        CHECK(d == (long)len && memcmp(dec, in, len) == 0, "COBS round trip of %u bytes", (unsigned)len);
    }
    enc[0] = 5; /* a code running past the end */
    CHECK(nh_cobs_decode(enc, 3, dec, sizeof dec) < 0, "invalid COBS is refused");
}

static void test_bad_frames_are_dropped_and_counted(void)
{
    static nh_parser p;
    static uint8_t buf[64];
    nh_msg m, got;
    size_t n, i;
    int ok = 0;
    memset(&m, 0, sizeof m);
    m.type = NH_HEARTBEAT;
    m.u.uptime_ms = 7;
    n = nh_frame_encode(&m, 1, buf, sizeof buf);
    buf[2] ^= 0x40; /* corrupt one byte */
    nh_parser_init(&p);
    for (i = 0; i < n; i++) {
        ok += nh_parser_feed(&p, buf[i], &got);
    }
    n = nh_frame_encode(&m, 2, buf, sizeof buf); /* the next frame is read: back in sync at the delimiter */
    for (i = 0; i < n; i++) {
        ok += nh_parser_feed(&p, buf[i], &got);
    }
    CHECK(ok == 1 && p.frames_bad == 1 && p.frames_ok == 1 && got.seq == 2, "a corrupted frame is dropped");
    m.type = NH_SET_POSITIONS;
    m.u.positions[0] = 1001;
    CHECK(nh_frame_encode(&m, 3, buf, sizeof buf) == 0, "a position above 1000 is not encoded");
}

static void run(nh_hand *h, uint32_t *now, uint32_t ms)
{
    uint32_t end = *now + ms;
    while (*now != end) {
        *now += 1;
        nh_hand_step(h, *now);
    }
}

static void test_hand(void)
{
    static nh_hand h;
    static nh_msg sent[256];
    nh_hand_config cfg = nh_hand_default_config();
    nh_msg m;
    uint32_t now = 0xFFFFFF00u; /* the clock wraps during the test */
    int n, k, statuses = 0;
    nh_hand_init(&h, &cfg, now);
    n = hand_sent(sent, 256);
    CHECK(n == 1 && sent[0].type == NH_HELLO && sent[0].u.hello.role == NH_ROLE_HAND &&
          sent[0].u.hello.caps == 27, "the hand announces itself with a HELLO of role hand");
    memset(&m, 0, sizeof m);
    m.type = NH_HELLO;
    m.u.hello.role = NH_ROLE_HOST;
    host_sends(&m);
    run(&h, &now, 1000);
    n = hand_sent(sent, 256);
    for (k = 0; k < n; k++) {
        statuses += sent[k].type == NH_STATUS;
    }
    CHECK(n >= 1 && sent[0].type == NH_HELLO, "a host HELLO is answered");
    CHECK(statuses >= 19 && statuses <= 21, "STATUS at 20 Hz: %d in 1 s", statuses);
    CHECK(sent[n - 1].u.status.state == NH_SAFE && (sent[n - 1].u.status.faults & NH_FAULT_WATCHDOG),
          "no command yet: safe posture, watchdog fault");
    for (k = 0; k < 100; k++) { /* commands every 10 ms for 1 s: close the index */
        memset(&m, 0, sizeof m);
        m.type = NH_SET_POSITIONS;
        m.u.positions[0] = 100;
        m.u.positions[1] = 1000;
        m.u.positions[2] = m.u.positions[3] = m.u.positions[4] = 100;
        host_sends(&m);
        run(&h, &now, 1);
        if (k == 0 || k == 9) {
            uint16_t pos[5];
            uint32_t ms = 10u * (uint32_t)k + 1u; /* since the first command */
            nh_hand_positions(&h, pos);
            /* at 1500 /s the index moves at most 1.5 a millisecond (+1 for rounding) */
            CHECK(pos[1] <= 100 + (ms * 3) / 2 + 1 && pos[1] >= 100 + (ms * 3) / 2 - 1,
                  "speed limit: index at %u after %u ms", pos[1], (unsigned)ms);
        }
        run(&h, &now, 9);
    }
    CHECK(h.state == NH_RUNNING && h.faults == 0 && motors[1] == 1000, "commanded: running, index closed");
    CHECK(h.commands_received == 100, "every command counted");
    run(&h, &now, 190); /* the last command came 9 ms before the loop ended */
    CHECK(h.state == NH_RUNNING, "199 ms without a command: still running");
    run(&h, &now, 2);
    CHECK(h.state == NH_SAFE && (h.faults & NH_FAULT_WATCHDOG) && h.target[1] == 100,
          "the watchdog takes the hand to its safe posture after 200 ms");
    run(&h, &now, 1000);
    CHECK(motors[1] == 100, "the fingers reach the safe posture");
    m.type = NH_ESTOP;
    m.u.reason = 1;
    host_sends(&m);
    run(&h, &now, 5);
    m.type = NH_SET_POSITIONS;
    host_sends(&m);
    run(&h, &now, 100);
    CHECK(h.state == NH_STOPPED && (h.faults & NH_FAULT_ESTOP) && h.target[1] == 100,
          "after ESTOP commands are ignored");
    nh_hand_reset_estop(&h);
    host_sends(&m);
    run(&h, &now, 5);
    CHECK(h.state == NH_RUNNING && !(h.faults & NH_FAULT_ESTOP), "a person's reset: commands move it again");
    rx[rx_len++] = 0x42; /* garbage, then a delimiter: a bad frame */
    rx[rx_len++] = 0x00;
    hand_sent(sent, 256);
    run(&h, &now, 60);
    n = hand_sent(sent, 256);
    CHECK(n >= 1 && sent[0].type == NH_STATUS && (sent[0].u.status.faults & NH_FAULT_BAD_FRAMES),
          "the next STATUS reports the corrupted frame");
    CHECK(!(sent[n - 1].u.status.faults & NH_FAULT_BAD_FRAMES) || n == 1, "then the bit clears");
}

int main(void)
{
    test_vectors();
    test_crc_and_cobs();
    test_bad_frames_are_dropped_and_counted();
    test_hand();
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
