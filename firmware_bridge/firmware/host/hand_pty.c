/* The firmware as a hand on a pseudo-terminal (Linux, POSIX): the host build the runtime's tests drive.
 *
 * Prints the port to open on its first line, then every 10 ms a line of its state for a test to read:
 *   state S faults F commands N positions P0..P4 target T0..T4 last L0..L4 bad B (frames dropped)
 * and a line "cmd SECONDS P0..P4" for every SET_POSITIONS that arrives, stamped by CLOCK_MONOTONIC when read (what
 * a test's hook on the Python hand records).
 * Reads commands on stdin: "reset" (a person presses reset after an ESTOP), "quit" (or end of input).
 * Options: --speed UNITS_PER_S --watchdog-ms MS --status-hz HZ --battery-mv MV --name NAME. */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "nh_hal.h"
#include "nh_hand.h"

static int master = -1;
static uint8_t inbuf[4096];
static size_t in_len, in_pos;
static uint8_t outbuf[4096];
static size_t out_len;
static uint16_t motors[5];
static volatile sig_atomic_t stopping;

int nh_hal_read_byte(void) { return in_pos < in_len ? inbuf[in_pos++] : -1; }

void nh_hal_write_byte(uint8_t b)
{
    if (out_len < sizeof outbuf) {
        outbuf[out_len++] = b;
    }
}

void nh_hal_set_motor_targets(const uint16_t t[5]) { memcpy(motors, t, sizeof motors); }

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
}

int main(int argc, char **argv)
{
    static nh_hand hand;
    static nh_parser watch;
    nh_hand_config cfg = nh_hand_default_config();
    char line[64];
    size_t line_len = 0;
    uint32_t next_report;
    int slave, i;
    cfg.battery_mv = 7400;
    cfg.name = "c-hand";
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--speed") == 0) cfg.speed_per_s = (uint32_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--watchdog-ms") == 0) cfg.watchdog_ms = (uint32_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--status-hz") == 0) cfg.status_period_ms = (uint32_t)(1000 / atol(argv[i + 1]));
        else if (strcmp(argv[i], "--battery-mv") == 0) cfg.battery_mv = (uint16_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--name") == 0) cfg.name = argv[i + 1];
        else {
            fprintf(stderr, "hand_pty: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        perror("hand_pty: cannot open a pseudo-terminal");
        return 1;
    }
    slave = open(ptsname(master), O_RDWR | O_NOCTTY); /* kept open: the port stays valid between host sessions */
    raw(slave);
    raw(master);
    fcntl(master, F_SETFL, O_NONBLOCK);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("%s\n", ptsname(master));
    fflush(stdout);
    nh_parser_init(&watch);
    nh_hand_init(&hand, &cfg, now_ms());
    next_report = now_ms();
    while (!stopping) {
        struct pollfd fds[2] = {{master, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        uint16_t pos[5];
        if (poll(fds, 2, 1) < 0 && errno != EINTR) {
            break;
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(master, inbuf, sizeof inbuf);
            size_t k;
            in_len = n > 0 ? (size_t)n : 0;
            in_pos = 0;
            for (k = 0; k < in_len; k++) { /* a copy of what arrives, for the tests: every SET_POSITIONS */
                nh_msg m;
                if (nh_parser_feed(&watch, inbuf[k], &m) && m.type == NH_SET_POSITIONS) {
                    struct timespec ts; /* CLOCK_MONOTONIC: the clock of Python's time.monotonic() on Linux */
                    clock_gettime(CLOCK_MONOTONIC, &ts);
                    printf("cmd %ld.%06ld %u %u %u %u %u\n", (long)ts.tv_sec, ts.tv_nsec / 1000L, m.u.positions[0],
                           m.u.positions[1], m.u.positions[2], m.u.positions[3], m.u.positions[4]);
                }
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n <= 0) {
                break; /* the test that started it is gone */
            }
            if (c == '\n') {
                line[line_len] = '\0';
                if (strcmp(line, "reset") == 0) nh_hand_reset_estop(&hand);
                if (strcmp(line, "quit") == 0) break;
                line_len = 0;
            } else if (line_len + 1 < sizeof line) {
                line[line_len++] = c;
            }
        }
        nh_hand_step(&hand, now_ms());
        in_len = in_pos = 0;
        if (out_len) {
            if (write(master, outbuf, out_len) < 0) { /* nobody reading: dropped, as a UART would */
            }
            out_len = 0;
        }
        if ((int32_t)(now_ms() - next_report) >= 0) {
            nh_hand_positions(&hand, pos);
            printf("state %u faults %u commands %lu positions %u %u %u %u %u target %u %u %u %u %u last %u %u %u %u "
                   "%u bad %lu\n", hand.state, hand.faults, (unsigned long)hand.commands_received, pos[0], pos[1],
                   pos[2], pos[3], pos[4], hand.target[0], hand.target[1], hand.target[2], hand.target[3],
                   hand.target[4], hand.last_command[0], hand.last_command[1], hand.last_command[2],
                   hand.last_command[3], hand.last_command[4], (unsigned long)hand.parser.frames_bad);
            fflush(stdout);
            next_report += 10;
        }
    }
    close(slave);
    close(master);
    return 0;
}
