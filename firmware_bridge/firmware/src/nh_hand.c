#include "nh_hand.h"

#include <string.h>

#include "nh_hal.h"

#define MU 1000 /* thousandths of a position unit: integer speed limiting, no floating point */

nh_hand_config nh_hand_default_config(void)
{
    nh_hand_config c;
    int k;
    for (k = 0; k < 5; k++) {
        c.safe_posture[k] = 100;
    }
    c.speed_per_s = 1500;
    c.watchdog_ms = 200;
    c.status_period_ms = 50;
    c.battery_mv = 0;
    c.name = "nh-hand";
    return c;
}

static void send(nh_hand *h, const nh_msg *m)
{
    static uint8_t frame[64]; /* a hand sends only HELLO and STATUS: both fit */
    size_t n = nh_frame_encode(m, h->seq, frame, sizeof frame), i;
    for (i = 0; i < n; i++) {
        nh_hal_write_byte(frame[i]);
    }
    h->seq = (uint16_t)(h->seq + 1u);
}

static void send_hello(nh_hand *h)
{
    nh_msg m;
    memset(&m, 0, sizeof m);
    m.type = NH_HELLO;
    m.u.hello.role = NH_ROLE_HAND;
    m.u.hello.caps = NH_CAP_POSITIONS | NH_CAP_STATUS | NH_CAP_WATCHDOG | NH_CAP_ESTOP;
    strncpy(m.u.hello.name, h->cfg.name ? h->cfg.name : "", NH_NAME_MAX);
    send(h, &m);
}

static void go_safe(nh_hand *h)
{
    memcpy(h->target, h->cfg.safe_posture, sizeof h->target);
}

void nh_hand_init(nh_hand *h, const nh_hand_config *cfg, uint32_t now_ms)
{
    int k;
    memset(h, 0, sizeof *h);
    h->cfg = *cfg;
    nh_parser_init(&h->parser);
    for (k = 0; k < 5; k++) {
        h->position_mu[k] = (int32_t)cfg->safe_posture[k] * MU;
    }
    go_safe(h);
    h->state = NH_SAFE;
    h->faults = NH_FAULT_WATCHDOG;
    h->last_step_ms = h->next_status_ms = now_ms;
    send_hello(h);
}

static void handle(nh_hand *h, const nh_msg *m, uint32_t now_ms)
{
    switch (m->type) {
    case NH_HELLO:
        send_hello(h); /* a device answers a host's HELLO */
        break;
    case NH_ESTOP:
        h->state = NH_STOPPED;
        h->faults |= NH_FAULT_ESTOP;
        go_safe(h);
        break;
    case NH_SET_POSITIONS:
        if (h->state == NH_STOPPED) {
            break; /* only a person restarts a stopped hand */
        }
        memcpy(h->target, m->u.positions, sizeof h->target);
        memcpy(h->last_command, m->u.positions, sizeof h->last_command);
        h->last_cmd_ms = now_ms;
        h->commanded = 1;
        h->commands_received++;
        break;
    case NH_HEARTBEAT:
        if (h->state != NH_STOPPED) {
            h->last_cmd_ms = now_ms;
            h->commanded = 1;
        }
        break;
    default:
        break; /* STATUS and SAMPLES are not for a hand */
    }
}

void nh_hand_step(nh_hand *h, uint32_t now_ms)
{
    nh_msg m;
    int c, k;
    uint32_t dt = now_ms - h->last_step_ms; /* unsigned: right across a wrap of the clock */
    int32_t step;
    uint16_t setpoint[5];
    while ((c = nh_hal_read_byte()) >= 0) {
        if (nh_parser_feed(&h->parser, (uint8_t)c, &m)) {
            handle(h, &m, now_ms);
        }
    }
    if (h->parser.frames_bad != h->bad_reported) {
        h->faults |= NH_FAULT_BAD_FRAMES;
    }
    if (h->state != NH_STOPPED) {
        if (!h->commanded || now_ms - h->last_cmd_ms > h->cfg.watchdog_ms) {
            h->state = NH_SAFE;
            h->faults |= NH_FAULT_WATCHDOG;
            h->commanded = 0;
            go_safe(h);
        } else {
            h->state = NH_RUNNING;
            h->faults &= (uint16_t)~NH_FAULT_WATCHDOG;
        }
    }
    if (dt > 1000u) {
        dt = 1000u; /* a stalled loop never turns into one large jump */
    }
    step = (int32_t)(h->cfg.speed_per_s * dt); /* thousandths per ms x ms */
    for (k = 0; k < 5; k++) {
        int32_t goal = (int32_t)h->target[k] * MU, d = goal - h->position_mu[k];
        h->position_mu[k] += d > step ? step : (d < -step ? -step : d);
        setpoint[k] = (uint16_t)((h->position_mu[k] + MU / 2) / MU);
    }
    h->last_step_ms = now_ms;
    nh_hal_set_motor_targets(setpoint);
    if ((int32_t)(now_ms - h->next_status_ms) >= 0) {
        memset(&m, 0, sizeof m);
        m.type = NH_STATUS;
        memcpy(m.u.status.positions, setpoint, sizeof setpoint);
        m.u.status.faults = h->faults;
        m.u.status.battery_mv = h->cfg.battery_mv;
        m.u.status.state = h->state;
        send(h, &m);
        h->faults &= (uint16_t)~NH_FAULT_BAD_FRAMES;
        h->bad_reported = h->parser.frames_bad;
        h->next_status_ms = now_ms + h->cfg.status_period_ms;
    }
}

void nh_hand_reset_estop(nh_hand *h)
{
    h->state = NH_SAFE;
    h->faults &= (uint16_t)~NH_FAULT_ESTOP;
    h->commanded = 0;
}

void nh_hand_positions(const nh_hand *h, uint16_t out[5])
{
    int k;
    for (k = 0; k < 5; k++) {
        out[k] = (uint16_t)((h->position_mu[k] + MU / 2) / MU);
    }
}
