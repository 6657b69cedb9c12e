/* The hand's firmware (PROTOCOL.md, "Behaviour the hand's firmware must have"): HELLO, SET_POSITIONS through its own
 * speed limit, STATUS at a fixed rate, a watchdog to the safe posture, ESTOP until a person resets it.
 * Call nh_hand_step() often (every 1-5 ms) with a millisecond clock; it reads, acts and writes through nh_hal.h. */
#ifndef NH_HAND_H
#define NH_HAND_H

#include <stdint.h>

#include "nh_frame.h"

typedef struct {
    uint16_t safe_posture[5];  /* where the watchdog and ESTOP take the fingers (default 100 each) */
    uint32_t speed_per_s;      /* largest finger speed, position units (0..1000) per second (default 1500) */
    uint32_t watchdog_ms;      /* no valid SET_POSITIONS or HEARTBEAT for this long: safe posture (default 200) */
    uint32_t status_period_ms; /* STATUS every this often (default 50: 20 Hz; the protocol needs >= 10 Hz) */
    uint16_t battery_mv;       /* reported in STATUS (0: not measured) */
    const char *name;          /* in HELLO, at most 32 bytes */
} nh_hand_config;

typedef struct {
    nh_hand_config cfg;
    uint8_t state;          /* nh_state */
    uint16_t faults;        /* nh_fault bits */
    int32_t position_mu[5]; /* the speed-limited setpoint, in thousandths of a position unit */
    uint16_t target[5];     /* where the fingers are going */
    uint32_t last_cmd_ms;
    uint32_t last_step_ms;
    uint32_t next_status_ms;
    int commanded;          /* a valid command has come since start */
    uint16_t seq;
    uint32_t commands_received;
    uint16_t last_command[5]; /* the last SET_POSITIONS acted on (valid when commands_received > 0) */
    uint32_t bad_reported;  /* the parser's bad-frame count at the last STATUS */
    nh_parser parser;
} nh_hand;

/* The defaults above. */
nh_hand_config nh_hand_default_config(void);

/* Start in the safe posture (state safe, watchdog fault) and announce the hand with a HELLO. */
void nh_hand_init(nh_hand *h, const nh_hand_config *cfg, uint32_t now_ms);

/* One step: handle what arrived, run the watchdog, move the setpoint toward the target at the speed limit, drive the
 * motors, send STATUS when due. now_ms is a free-running millisecond clock (it may wrap). */
void nh_hand_step(nh_hand *h, uint32_t now_ms);

/* A person pressed reset: leave the stopped state (the watchdog decides between safe and running). */
void nh_hand_reset_estop(nh_hand *h);

/* The setpoint in position units (0..1000). */
void nh_hand_positions(const nh_hand *h, uint16_t out[5]);

#endif
