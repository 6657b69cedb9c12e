/* A fuzz run of the firmware's receive path under AddressSanitizer and UndefinedBehaviorSanitizer: random bytes,
 * valid frames of every type with random payloads, and valid frames mutated (bits flipped, bytes dropped or zeroed,
 * frames cut or run together) go into the hand, a byte stream at a time, on a running clock. Checks after every
 * step that the state, faults and positions stay in range; the firmware allocates nothing (malloc is wrapped and
 * counted). Usage: fuzz [ITERATIONS [SEED]]; exit status 0 when nothing broke. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nh_frame.h"
#include "nh_hal.h"
#include "nh_hand.h"

static uint8_t rx[NH_MAX_FRAME * 2];
static size_t rx_len, rx_pos;
static uint16_t motors[5];
static unsigned long tx_bytes, allocations;
static int counting;

int nh_hal_read_byte(void) { return rx_pos < rx_len ? rx[rx_pos++] : -1; }
void nh_hal_write_byte(uint8_t b) { (void)b; tx_bytes++; }
void nh_hal_set_motor_targets(const uint16_t t[5]) { memcpy(motors, t, sizeof motors); }

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    if (counting) {
        allocations++;
    }
    return __real_malloc(n);
}

static uint32_t rng = 1;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t valid_frame(uint8_t *out, size_t cap)
{
    static int16_t samples[4088];
    nh_msg m;
    size_t k;
    memset(&m, 0, sizeof m);
    m.type = (uint8_t)(1 + next() % 6);
    switch (m.type) {
    case NH_HELLO:
        m.u.hello.role = (uint8_t)next();
        m.u.hello.caps = (uint16_t)next();
        m.u.hello.fs_hz = (float)(next() % 100000);
        for (k = 0; k < next() % (NH_NAME_MAX + 1); k++) {
            m.u.hello.name[k] = (char)('a' + next() % 26);
        }
        break;
    case NH_SET_POSITIONS:
        for (k = 0; k < 5; k++) {
            m.u.positions[k] = (uint16_t)(next() % 1001);
        }
        break;
    case NH_SAMPLES:
        m.u.samples.n_channels = (uint16_t)(1 + next() % 16);
        m.u.samples.n_samples = (uint16_t)(1 + next() % (4088 / m.u.samples.n_channels));
        for (k = 0; k < (size_t)m.u.samples.n_samples * m.u.samples.n_channels; k++) {
            samples[k] = (int16_t)next();
        }
        m.u.samples.data = (const uint8_t *)samples;
        break;
    default:
        m.u.uptime_ms = next();
        m.u.reason = (uint8_t)next();
        break;
    }
    return nh_frame_encode(&m, (uint16_t)next(), out, cap);
}

static void stream(void)
{
    size_t n = 0, k, f;
    rx_len = rx_pos = 0;
    while (rx_len < sizeof rx / 2) {
        uint32_t kind = next() % 4;
        if (kind == 0) { /* noise */
            for (k = next() % 64; k > 0; k--) {
                rx[rx_len++] = (uint8_t)next();
            }
            continue;
        }
        f = valid_frame(rx + rx_len, sizeof rx - rx_len);
        if (f == 0) {
            break;
        }
        n = rx_len;
        rx_len += f;
        if (kind == 2) { /* mutate it */
            for (k = 1 + next() % 4; k > 0; k--) {
                size_t at = n + next() % f;
                switch (next() % 3) {
                case 0: rx[at] ^= (uint8_t)(1u << (next() % 8)); break;
                case 1: rx[at] = 0; break;
                default: rx_len = at; break; /* cut: runs into the next frame */
                }
                if (rx_len <= n) {
                    break;
                }
                f = rx_len - n;
            }
        }
    }
}

int main(int argc, char **argv)
{
    static nh_hand h;
    nh_hand_config cfg = nh_hand_default_config();
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    uint32_t now = 0, frames_before, frames_seen = 0;
    long i;
    int k;
    rng = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) | 1u : 12345u;
    counting = 1;
    nh_hand_init(&h, &cfg, now);
    for (i = 0; i < iterations; i++) {
        stream();
        frames_before = h.parser.frames_ok + h.parser.frames_bad;
        while (rx_pos < rx_len) {
            size_t stop = rx_pos + 1 + next() % 512; /* the stream arrives in pieces */
            size_t end = rx_len;
            rx_len = stop < end ? stop : end;
            now += 1 + next() % 5;
            nh_hand_step(&h, now);
            rx_len = end;
            if (h.state > NH_STOPPED || h.faults > 31) {
                printf("state %u faults %u out of range at iteration %ld\n", h.state, h.faults, i);
                return 1;
            }
            for (k = 0; k < 5; k++) {
                if (motors[k] > 1000 || h.target[k] > 1000) {
                    printf("finger %d at %u (target %u) at iteration %ld\n", k, motors[k], h.target[k], i);
                    return 1;
                }
            }
        }
        frames_seen += h.parser.frames_ok + h.parser.frames_bad - frames_before;
        if (h.state == NH_STOPPED && next() % 4 == 0) {
            nh_hand_reset_estop(&h);
        }
    }
    counting = 0;
    printf("%ld streams, %lu frames decoded, %lu dropped, %lu bytes sent, %lu allocations, final state %u\n",
           iterations, (unsigned long)h.parser.frames_ok, (unsigned long)h.parser.frames_bad, tx_bytes, allocations,
           h.state);
    if (frames_seen < (uint32_t)iterations) { /* every stream holds several frames: the parser must keep finding them */
        printf("only %lu frames in %ld streams: the parser lost sync\n", (unsigned long)frames_seen, iterations);
        return 1;
    }
    return allocations != 0;
}
